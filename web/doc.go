// Package web is the operator console at /ui: server-rendered pages
// (html/template, embedded with the CSS in the binary, no JavaScript) to
// browse certificates and issuers, issue from a CSR and revoke.
//
// Operators sign in with an API key; its scopes decide what the console
// shows and allows, exactly as in the REST API. The session is a random
// secret in a cookie (__Host-, HttpOnly, Secure, SameSite=Strict, 8 hours);
// the database keeps its SHA-256 with the key and the expiry, so every node
// of a cluster accepts it and signing out ends it on all of them. Each
// request checks the key again: a revoked key ends its sessions at once.
// Every form carries a CSRF token derived from the session by an HMAC key
// inside the HSM, and every page is sent with a strict
// Content-Security-Policy.
package web
