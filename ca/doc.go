// Package ca owns Strongroom's issuers (a certificate plus a crypto.Signer
// whose key lives in the HSM), certificate profiles, serial numbers and the
// issuance pipeline:
//
//	reserve the serial → build from the profile → lint a copy signed by a
//	throwaway key → record the intent (the linted TBS) → sign the exact
//	linted TBS bytes inside the HSM → check the signed TBS equals the
//	linted one and the signature verifies → store → return the chain.
//
// A crash between any two steps leaves a row that says how far issuance got;
// no certificate is ever returned that is not stored, and a serial, once
// reserved, is never used again (the database's primary key enforces it).
//
// ca does not decide policy (which names, keys or lifetimes a requester may
// have: that is package ra), speaks no HTTP, and never sees a private key:
// the only seam to the HSM is crypto.Signer.
package ca
