package ra

import (
	"context"
	"net/netip"
	"strings"

	"github.com/strongroom-pki/strongroom/core"
)

// Identifier is a name a certificate would carry: Type is "dns", "ip",
// "email" or "uri" (ACME uses the first two, RFC 8555 §9.7.7, RFC 8738).
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// IdentifierProblem says why one identifier is refused.
type IdentifierProblem struct {
	Identifier Identifier
	Detail     string
}

// IdentifierError lists every refused identifier (ACME turns them into
// subproblems, RFC 8555 §6.7.1). Its Kind is KindRejected.
type IdentifierError struct {
	Problems []IdentifierProblem
}

func (e *IdentifierError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Identifier.Value + " " + p.Detail
	}
	return strings.Join(parts, "; ")
}

// Unwrap makes core.KindOf and core.DetailOf see a KindRejected error.
func (e *IdentifierError) Unwrap() error {
	return &core.Error{Kind: core.KindRejected, Detail: e.Error()}
}

// CheckIdentifiers applies the name policy (and, if profile is not empty,
// the profile access rule for principal) to identifiers, as ACME does at
// new-order time. It returns nil, a KindForbidden/KindRejected core.Error,
// or an *IdentifierError listing every refused identifier.
func (a *Authority) CheckIdentifiers(ctx context.Context, principal, profile string, ids []Identifier) error {
	if profile != "" {
		if _, err := a.ca.Profile(profile); err != nil {
			return err
		}
		if !a.policy.mayUse(principal, profile) {
			return core.Errorf(core.KindForbidden, "%s may not use profile %s", principalLabel(principal), profile)
		}
	}
	if len(ids) == 0 {
		return core.Errorf(core.KindMalformed, "no identifiers")
	}
	if len(ids) > a.policy.MaxNames {
		return core.Errorf(core.KindRejected, "%d identifiers, policy allows at most %d", len(ids), a.policy.MaxNames)
	}
	return a.checkIDs("", ids)
}

// ZoneRefusal says why an IP address with a zone (fe80::1%eth0) is
// refused: a zone names an interface of one host, and a certificate has
// no way to carry it.
func ZoneRefusal(zone string) string {
	return "is an IP address with a zone (%" + zone + "), which cannot be a SAN: give the address without the zone"
}

// checkIDs applies the name policy, then the name constraints of issuer's
// chain (zero: the default issuer's), to each identifier.
func (a *Authority) checkIDs(issuer string, ids []Identifier) error {
	var probs []IdentifierProblem
	for _, id := range ids {
		var why string
		switch id.Type {
		case "dns":
			why = a.policy.checkDNS(strings.ToLower(id.Value))
		case "ip":
			addr, err := netip.ParseAddr(id.Value)
			switch {
			case err != nil:
				why = "is not an IP address"
			case addr.Zone() != "":
				why = ZoneRefusal(addr.Zone())
			default:
				why = a.policy.checkIP(addr)
			}
		case "email":
			why = a.policy.checkEmail(id.Value)
		case "uri":
			why = a.policy.checkURI(id.Value)
		default:
			why = "has unsupported identifier type " + id.Type
		}
		if why == "" {
			why = a.ca.NameRefusal(issuer, id.Type, id.Value)
		}
		if why != "" {
			probs = append(probs, IdentifierProblem{Identifier: id, Detail: why})
		}
	}
	if len(probs) > 0 {
		return &IdentifierError{Problems: probs}
	}
	return nil
}
