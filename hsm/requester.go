package hsm

import (
	"context"
	"fmt"
)

// Many callers may share one HSM user (the key service's "apps" serves
// every application), so the user alone does not say who asked for a key
// to be made, exported or destroyed. A front end names the caller in the
// context; every audit entry written under that context records it in its
// details as by="…" (apply, audit.go).

type requesterKey struct{}

// WithRequester returns ctx naming who asked for the operations done with
// it (an API key "apikey:<id>", a client certificate "mtls:<name>"), for
// their audit entries. who is recorded as given: never a secret.
func WithRequester(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, requesterKey{}, who)
}

// withRequester appends by="who" to details when ctx names a requester.
func withRequester(ctx context.Context, details string) string {
	who, _ := ctx.Value(requesterKey{}).(string)
	if who == "" {
		return details
	}
	by := fmt.Sprintf("by=%q", who)
	if details == "" {
		return by
	}
	return details + " " + by
}
