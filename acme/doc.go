// Package acme is Strongroom's RFC 8555 server: one Server per configured
// endpoint, mounted by package server as a plain http.Handler at
// /acme/{name}/. It owns the protocol — JWS checking (§6.2), nonces (§6.5),
// accounts with external account binding and key rollover (§7.3), orders for
// dns and ip (RFC 8738) identifiers, authorizations and challenges run
// asynchronously (§7.5, §8), finalize, certificate download with alternate
// chains (§7.4.2), revocation (§7.6), renewal information (ARI, RFC 9773) and
// the profiles extension — and the mapping from core.Error kinds to ACME
// problem documents (§6.7), made in one place (problem.go).
//
// It must not decide policy (which names or profiles are allowed: Policy),
// build or sign certificates (Issuer), check challenge responses on the wire
// (Validator, package acme/challenge), or hold key material: EAB HMAC keys
// live in the HSM and are only used through EAB.VerifyMAC.
package acme
