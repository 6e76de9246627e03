package hsm

import (
	"context"
	"testing"
)

func TestWithRequester(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		ctx           context.Context
		details, want string
	}{
		{ctx, "type=p256", "type=p256"},
		{WithRequester(ctx, ""), "type=p256", "type=p256"},
		{WithRequester(ctx, "apikey:k1"), "type=p256", `type=p256 by="apikey:k1"`},
		{WithRequester(ctx, "mtls:team a"), "", `by="mtls:team a"`},
	} {
		if got := withRequester(c.ctx, c.details); got != c.want {
			t.Errorf("withRequester(%q) = %q, want %q", c.details, got, c.want)
		}
	}
}
