package acme

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
)

// RAIssuer is the production Issuer: it issues and revokes through ra's
// policy and the ca pipeline. Each certificate comes with two chains: up to
// the intermediate (the default, what servers send) and one that also
// carries Root, offered as an alternate (Link rel="alternate").
type RAIssuer struct {
	Authority *ra.Authority
	Root      []byte // DER of the root certificate
}

func (i *RAIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest, profile, requester string) (*Issued, error) {
	iss, err := i.Authority.Issue(ctx, ra.Request{CSR: csr, Profile: profile, Principal: requester})
	if err != nil {
		return nil, fromRAIdentifiers(err)
	}
	chain := make([][]byte, 0, len(iss.Chain)+1)
	for _, c := range iss.Chain {
		chain = append(chain, c.Raw)
	}
	withRoot := append(append([][]byte{}, chain...), i.Root)
	return &Issued{Serial: iss.Serial, Chains: [][][]byte{chain, withRoot}}, nil
}

func (i *RAIssuer) Revoke(ctx context.Context, serial core.Serial, reason core.RevocationReason, requester string, keyHolder bool) error {
	if reason == core.ReasonKeyCompromise && keyHolder {
		return i.Authority.RevokeAndBlockKey(ctx, serial, time.Time{}, requester)
	}
	return i.Authority.Revoke(ctx, serial, reason, time.Time{}, requester)
}

func (i *RAIssuer) Certificate(ctx context.Context, serial core.Serial) (*core.Certificate, error) {
	return i.Authority.Certificate(ctx, serial)
}

// RAPolicy is the production Policy: ra's name policy at new-order time,
// with ra's per-identifier problems turned into ACME subproblems, and ra's
// key policy (the check ra.Authority.Issue makes) at finalize.
type RAPolicy struct{ Authority *ra.Authority }

func (p *RAPolicy) CheckIdentifiers(ctx context.Context, endpoint string, ids []Identifier, profile string) error {
	rids := raIdentifiers(ids)
	return fromRAIdentifiers(p.Authority.CheckIdentifiers(ctx, "acme:"+endpoint+"/*", profile, rids))
}

func (p *RAPolicy) CheckKey(ctx context.Context, pub crypto.PublicKey, profile string) error {
	return p.Authority.CheckKey(profile, pub)
}

// raIdentifiers converts identifiers for package ra.
func raIdentifiers(ids []Identifier) []ra.Identifier {
	rids := make([]ra.Identifier, len(ids))
	for i, id := range ids {
		rids[i] = ra.Identifier{Type: id.Type, Value: id.Value}
	}
	return rids
}

// fromRAIdentifiers turns an *ra.IdentifierError into one IdentifierError
// per refused identifier (the order's subproblems); other errors pass.
func fromRAIdentifiers(err error) error {
	var ie *ra.IdentifierError
	if !errors.As(err, &ie) {
		return err
	}
	var errs []error
	for _, prob := range ie.Problems {
		errs = append(errs, &IdentifierError{Identifier: Identifier{Type: prob.Identifier.Type, Value: prob.Identifier.Value}, Detail: prob.Detail})
	}
	return errors.Join(errs...)
}
