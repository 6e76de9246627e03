package core

import (
	"net"
	"net/http"
	"unicode"
)

// Invisible reports whether r is a control character, an invisible
// formatting one (Unicode Cf, such as bidirectional overrides), a line or
// paragraph separator, a default-ignorable one (Hangul fillers, the
// combining grapheme joiner, variation selectors) or a private-use one:
// what a terminal would act on, or a listing would hide or show as
// nothing, in a name someone else chose.
func Invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// ClientIP is the address of the connection r came over (not a header a
// client can set), for per-client limits.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
