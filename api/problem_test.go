package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
)

// TestDamagedKeyProblem: a key the HSM refuses as damaged is still a 500,
// but its problem says what happened and what an operator does (a review
// got a bare "internal error" for every call on such a key), without the
// HSM's own words (key ids, entry numbers).
func TestDamagedKeyProblem(t *testing.T) {
	err := fmt.Errorf("signing: key 1234: the audit log records version 2 (entry #8): %w", hsm.ErrCorrupt)
	p := problemFor(err)
	if p.Status != http.StatusInternalServerError || p.Type != problemBase+"keyDamaged" ||
		!strings.Contains(p.Detail, "ca hsm status") || strings.Contains(p.Detail, "1234") || strings.Contains(p.Detail, "#8") {
		t.Fatalf("problem for a damaged key: %+v", p)
	}
	if p := problemFor(fmt.Errorf("boom")); p.Type == problemBase+"keyDamaged" || p.Detail != "internal error" {
		t.Fatalf("problem for another internal error: %+v", p)
	}
}
