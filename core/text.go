package core

import (
	"net"
	"net/http"
	"unicode"
)

// Invisible reports whether r is a control character or an invisible
// formatting one (Unicode Cf, such as bidirectional overrides): what a
// terminal would act on, or a listing would hide, in a name someone else
// chose.
func Invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// ClientIP is the address of the connection r came over (not a header a
// client can set), for per-client limits.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
