// Package server runs Strongroom's two listeners and the middleware every
// request passes through.
//
// The HTTPS listener (gin) carries ACME at /acme/{name}/, the REST API at
// /api/v1, the console at /ui, and /healthz, /readyz and /metrics. The plain
// HTTP listener carries OCSP, CRLs and issuer certificates, so revocation
// checking never depends on TLS; it is a prefix dispatcher, not a router,
// because OCSP GET paths carry base64 ('+', '/', '=') that routers clean.
//
// In front of net/http on the plain listener runs a fast lane
// (fastlane.go): a small HTTP/1.1 reader that answers the GET and HEAD
// requests a FastHandler takes (OCSP, mostly from cached answers) and hands the
// connection to net/http at the first request it cannot answer with
// certainty. It roughly doubles the cached-OCSP rate of net/http alone.
//
// Every request gets a request id, a body limit, a recover that turns a
// panic into a 500 problem (and logs it), and exactly one log event when it
// ends. server owns no business logic: front ends are mounted by cmd/ca.
package server
