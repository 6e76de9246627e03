// Package crl owns Strongroom's certificate revocation lists (RFC 5280 §5):
// a streaming DER encoder that signs a list of any size with a crypto.Signer
// while holding only the encoded entries in memory, the per-issuer builder
// that numbers, signs and stores full and delta CRLs, the scheduler that
// rebuilds them periodically and shortly after a revocation, and the HTTP
// handler that serves them (and the issuer certificates) at the distribution
// point URLs.
//
// crl never decides who is revoked (it reads revocations through the small
// RevokedSource interface), never sees a private key (only crypto.Signer
// values, backed by the HSM in production), and never imports a router:
// Handler is a plain http.Handler.
package crl
