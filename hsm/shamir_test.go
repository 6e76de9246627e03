package hsm

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckShamir: threshold 1 of several shares made every share the whole
// secret (found by a review); it is refused, 1 of 1 is not.
func TestCheckShamir(t *testing.T) {
	for _, c := range []struct {
		m, n int
		ok   bool
		why  string
	}{
		{1, 5, false, "whole master secret"},
		{1, 2, false, "whole master secret"},
		{6, 5, false, "threshold <= shares"},
		{0, 3, false, "threshold <= shares"},
		{1, 1, true, ""},
		{2, 3, true, ""},
		{3, 5, true, ""},
	} {
		err := CheckShamir(c.m, c.n)
		if c.ok != (err == nil) || (!c.ok && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.why))) {
			t.Errorf("%d of %d: %v", c.m, c.n, err)
		}
		if _, _, _, err := splitMaster(c.m, c.n); c.ok != (err == nil) {
			t.Errorf("splitMaster %d of %d: %v", c.m, c.n, err)
		}
	}
}
