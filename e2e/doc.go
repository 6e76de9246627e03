// Package e2e holds end-to-end tests: they build the ca binary, start
// `ca serve` on a fresh data directory with free ports, and drive it with
// real clients (curl-like HTTP, openssl, GnuTLS, certbot, lego, dehydrated,
// uacme, acme-tiny, Caddy, Go's autocert).
package e2e
