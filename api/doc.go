// Package api is Strongroom's REST API, mounted by package server under
// /api/v1: issue a certificate from a CSR, dry-run an issuance, list, get and
// revoke certificates, list issuers with their chains, and the OpenAPI 3
// document describing all of it (GET /api/v1/openapi.json).
//
// Authentication is either an API key (Authorization: Bearer <key>; keys
// are stored only as SHA-256 hashes and carry scopes: issue, revoke, read,
// admin) or a TLS client certificate that the server's TLS configuration has
// verified against our own CAs. A client certificate is mapped to the
// principal "mtls:<subject common name>" and gets the scopes that
// Options.ClientCertScopes grants to a matching pattern; a revoked client
// certificate is refused.
//
// Every error is an RFC 9457 application/problem+json document made in one
// place (problem.go) from the core.Error kind; a client's mistake is never a
// 5xx. api decides nothing about policy (package ra does) and never sees a
// private key.
package api
