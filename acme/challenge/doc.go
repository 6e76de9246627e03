// Package challenge validates ACME challenges: http-01 and dns-01 (RFC 8555
// §8.3, §8.4) and tls-alpn-01 (RFC 8737), for dns identifiers and, where RFC
// 8738 allows it, ip identifiers.
//
// The package owns the network side of validation: resolving names through
// the configured resolver (or a host override), fetching the key
// authorization over HTTP with bounded redirects and body size, querying TXT
// records with miekg/dns (CNAMEs followed, TCP on truncation), and checking
// the acmeIdentifier certificate a TLS server presents for ALPN "acme-tls/1".
// Every attempt has a time limit. It never connects to link-local,
// unspecified, multicast or broadcast addresses (unless Options.HostOverride
// names one), and follows a redirect only to a host Options.RedirectAllowed
// accepts: a client must not be able to aim the validator at cloud metadata
// or at servers it could not have ordered a certificate for.
//
// It must not know about accounts, orders, storage or HTTP problem documents:
// package acme gives it a challenge type, an identifier, a token and the key
// authorization it computed, and maps the returned *Error to a problem. The
// Error's Detail is written for the ACME client (what was fetched, what was
// wrong with the answer) and never contains anything but public values: an
// http-01 body is quoted only when it is shaped like a key authorization,
// since the server that sent it may not be the client's.
package challenge
