// Package core holds Strongroom's domain types — serial numbers, identifiers,
// certificate statuses, revocation reasons — and the typed error every layer
// uses when a caller must branch on what went wrong.
//
// core imports only the standard library. It knows nothing of HTTP, SQL or the
// HSM; front ends turn a core.Error's Kind into an ACME or RFC 9457 problem in
// one place each.
package core
