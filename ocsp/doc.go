// Package ocsp owns Strongroom's OCSP responder (RFC 6960, with the RFC 5019
// lightweight profile for GET): parsing requests, answering good, revoked
// or unknown for the issuers it serves, signing with a delegated responder
// certificate per issuer (key in the HSM, certificate renewed automatically,
// both got again from the KeySource once the key fails to sign) or with the
// issuer key, caching signed answers until shortly before their
// nextUpdate, and dropping cached answers the moment a revocation event
// arrives. Cached GET answers are also kept by request target, ready to
// write, for the plain listener's fast lane (AppendFast, fast.go). A cached
// answer signed under a revoked responder certificate is not served,
// whichever node made it (signers.go).
//
// Responder is a plain http.Handler: GET paths carry base64 in which '+',
// '/' and '=' are data, so it must be mounted on a path prefix without a
// router that cleans or splits paths. It never answers a client mistake with
// a 5xx: garbage gets malformedRequest, an issuer it does not serve gets
// unauthorized, both as proper OCSP responses.
//
// ocsp does not decide revocation (it reads statuses through StatusSource),
// never holds a private key (only crypto.Signer values), and does not issue
// certificates itself (CertIssuer does, with the issuer's key).
package ocsp
