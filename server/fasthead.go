package server

import (
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// fastRequest is what the fast lane needs of a request head.
type fastRequest struct {
	head        bool   // HEAD rather than GET
	target      string // as sent
	ifNoneMatch string
	requestID   string
	close       bool // Connection: close
}

type headStatus int

const (
	headComplete   headStatus = iota
	headIncomplete            // more bytes needed
	headHandoff               // net/http must decide
)

// parseHead reads one request head from the start of b. It takes only what
// it can answer with certainty — GET or HEAD, HTTP/1.1, an origin-form
// target without a query, one Host, CRLF line ends, no body, no field it
// does not know the meaning of for a GET — and returns headHandoff for
// everything else, including every malformed request, so net/http gives
// the answer (400, 405, 431 ...) it always gives. used is the length of the
// head on headComplete.
func parseHead(b []byte) (req fastRequest, used int, st headStatus) {
	line, rest, ok := cutLine(b)
	if !ok {
		return req, 0, incompleteOr(b)
	}
	method, line, ok1 := bytes.Cut(line, []byte{' '})
	target, version, ok2 := bytes.Cut(line, []byte{' '})
	if !ok1 || !ok2 || string(version) != "HTTP/1.1" {
		return req, 0, headHandoff
	}
	switch string(method) {
	case "GET":
	case "HEAD":
		req.head = true
	default:
		return req, 0, headHandoff
	}
	if len(target) == 0 || target[0] != '/' {
		return req, 0, headHandoff
	}
	for i, c := range target {
		if c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			return req, 0, headHandoff
		}
		// A bad %-escape is net/http's 400.
		if c == '%' && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])) {
			return req, 0, headHandoff
		}
	}
	hosts := 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return req, 0, incompleteOr(rest)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !isToken(name) {
			return req, 0, headHandoff
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return req, 0, headHandoff
			}
		}
		switch {
		case fieldIs(name, "host"):
			hosts++
			if !httpguts.ValidHostHeader(string(value)) {
				return req, 0, headHandoff
			}
		case fieldIs(name, "connection"):
			for _, opt := range bytes.Split(value, []byte{','}) {
				opt = bytes.Trim(opt, " \t")
				switch {
				case len(opt) == 0, fieldIs(opt, "keep-alive"):
				case fieldIs(opt, "close"):
					req.close = true
				default:
					return req, 0, headHandoff // upgrade and the like
				}
			}
		case fieldIs(name, "if-none-match"):
			if req.ifNoneMatch != "" {
				return req, 0, headHandoff
			}
			req.ifNoneMatch = string(value)
		case fieldIs(name, "x-request-id"):
			if len(value) > 0 && len(value) <= 64 && req.requestID == "" {
				req.requestID = string(value)
			}
		case fieldIs(name, "content-length"), fieldIs(name, "transfer-encoding"),
			fieldIs(name, "expect"), fieldIs(name, "upgrade"):
			return req, 0, headHandoff
		}
	}
	if hosts != 1 {
		return req, 0, headHandoff
	}
	req.target = string(target)
	return req, len(b) - len(rest), headComplete
}

// cutLine splits off one CRLF-terminated line. A bare LF is left to
// net/http: ok is false and incompleteOr sees it.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, b, false
	}
	return b[:i-1], b[i+1:], true
}

// incompleteOr tells a head cut short (wait for more) from one with a line
// end the lane does not take (hand off).
func incompleteOr(b []byte) headStatus {
	if bytes.IndexByte(b, '\n') >= 0 {
		return headHandoff
	}
	return headIncomplete
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func fieldIs(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token (a field name).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
