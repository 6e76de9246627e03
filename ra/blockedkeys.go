package ra

import "context"

// SweepBlockedKeys revokes for keyCompromise every unexpired certificate
// whose key is blocked (one revoked for another reason gets keyCompromise
// as its reason), and tells the responders and CRL builders of each
// (OnRevoke) as Revoke does. RevokeAndBlockKey and `ca cert block-key`
// block a key, so the other certificates of that key — renewals keep their
// key, and a key may be reused across requests — are revoked with it: a
// compromised key is compromised in all of them. It returns how many it
// revoked.
func (a *Authority) SweepBlockedKeys(ctx context.Context) (int, error) {
	out, err := a.ca.RevokeBlockedKeys(ctx)
	for _, c := range out {
		a.log.InfoContext(ctx, "revocation", "serial", string(c.Serial), "reason", c.RevocationReason.String(),
			"principal", "blocked key")
		if a.onRevoke != nil {
			a.onRevoke(ctx, c.IssuerID, c.Serial)
		}
	}
	if len(out) > 0 {
		// One of them may be a CA certificate sharing an issuer's key.
		if cerr := a.ca.CheckIssuers(ctx); cerr != nil {
			a.log.ErrorContext(ctx, "certificates with a blocked key were revoked, but checking the issuers failed", "err", cerr)
		}
	}
	return len(out), err
}
