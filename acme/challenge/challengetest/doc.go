// Package challengetest runs the other side of ACME challenges for tests: a
// DNS server whose records tests set, an http-01 responder and a tls-alpn-01
// responder, all on loopback ports chosen by the kernel.
//
// The DNS server is also usable by real ACME clients started by tests:
//
//   - lego: --dns httpreq with HTTPREQ_ENDPOINT=<APIURL()> (lego POSTs
//     {"fqdn","value"} to /present and /cleanup), or --dns exec with
//     EXEC_PATH=<Hooks.LegoExec>, or --dns rfc2136 with
//     RFC2136_NAMESERVER=<Addr()> (no TSIG); add --dns.resolvers <Addr()>
//     and --dns.disable-cp, since the server is not reachable on port 53.
//   - certbot: --manual --preferred-challenges dns
//     --manual-auth-hook <Hooks.CertbotAuth>
//     --manual-cleanup-hook <Hooks.CertbotCleanup>.
//
// The hook scripts (Python 3) call the server's HTTP API. The API also
// accepts pebble-challtestsrv's /set-txt, /clear-txt and /add-a bodies.
//
// Nothing here is meant for production: the servers hold records in memory,
// accept updates from anyone who can reach loopback, and log nothing.
package challengetest
