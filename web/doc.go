// Package web is the operator console at /ui: server-rendered pages
// (html/template, embedded with the CSS in the binary, no JavaScript) to
// browse certificates and issuers, issue from a CSR and revoke.
//
// Operators sign in with an API key; its scopes decide what the console
// shows and allows, exactly as in the REST API. The session is a cookie
// (HttpOnly, Secure, SameSite=Strict, 8 hours) naming the key and an
// expiry, MACed with an HMAC key inside the HSM, so every node of a cluster
// accepts it and none can forge it. Each request checks the key again: a
// revoked key ends its sessions at once. Every form carries a CSRF token
// derived from the session by the same HSM key, and every page is sent
// with a strict Content-Security-Policy.
package web
