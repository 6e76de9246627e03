package acme

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/strongroom-pki/strongroom/core"
)

// RedirectPolicy returns the check an http-01 validator serving this
// endpoint applies to the host of each redirect target
// (challenge.Options.RedirectAllowed): the host must be an identifier an
// order on the endpoint could name, by the same checks newOrder makes (the
// identifier syntax, then p.CheckIdentifiers, without a profile: the
// profile rule is about who orders, not about the name). Otherwise a client
// could lead the validator, through a redirect from a name it controls, to
// a host it could never have ordered: an IP address when the policy allows
// none, a name under a denied suffix. p nil: the syntax only, as for orders.
//
// The returned error's message is shown to the ACME client: it is the
// refusal an order for the host would get, or a generic one.
func RedirectPolicy(endpoint string, p Policy) func(ctx context.Context, host string) error {
	return func(ctx context.Context, host string) error {
		id := Identifier{Type: "dns", Value: host}
		if _, err := netip.ParseAddr(host); err == nil {
			id.Type = "ip"
		}
		n, err := normalizeIdentifier(id)
		if err == nil && p != nil {
			err = p.CheckIdentifiers(ctx, endpoint, []Identifier{n}, "")
		}
		if err == nil {
			return nil
		}
		if ies := identifierErrors(err); len(ies) > 0 {
			why := make([]string, len(ies))
			for i, ie := range ies {
				why[i] = ie.Error()
			}
			return errors.New("not an identifier this endpoint issues for (" + strings.Join(why, "; ") + ")")
		}
		if core.KindOf(err) == core.KindRejected {
			return errors.New("not an identifier this endpoint issues for (" + core.DetailOf(err) + ")")
		}
		return errors.New("the endpoint's identifier policy could not be checked")
	}
}
