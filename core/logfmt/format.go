package logfmt

import (
	"log/slog"
	"math"
	"strconv"
)

// The fast path below mirrors log/slog's handler.go, text_handler.go and
// json_handler.go for the cases it accepts. Each append function reports
// false, leaving the buffer to be discarded, for a value it does not format
// exactly as slog would; the record then goes to the standard handler.

// appendRecord appends r as one line, or reports false.
func (h *handler) appendRecord(b []byte, r slog.Record) ([]byte, bool) {
	var level string
	switch r.Level {
	case slog.LevelDebug:
		level = "DEBUG"
	case slog.LevelInfo:
		level = "INFO"
	case slog.LevelWarn:
		level = "WARN"
	case slog.LevelError:
		level = "ERROR"
	default:
		return b, false
	}
	ok := true
	if h.json {
		b = append(b, '{')
	}
	if !r.Time.IsZero() {
		b = h.appendKey(b, slog.TimeKey, 0, false)
		if b, ok = h.appendTime(b, r.Time); !ok {
			return b, false
		}
	}
	b = h.appendKey(b, slog.LevelKey, 0, !r.Time.IsZero())
	b = h.appendSimple(b, level, 0)
	b = h.appendKey(b, slog.MessageKey, 0, true)
	if b, ok = h.appendString(b, r.Message); !ok {
		return b, false
	}
	if len(h.pre) > 0 {
		b = h.appendSep(b)
		b = append(b, h.pre...)
	}
	r.Attrs(func(a slog.Attr) bool {
		b, ok = h.appendAttr(b, a, true)
		return ok
	})
	if !ok {
		return b, false
	}
	if h.json {
		b = append(b, '}')
	}
	return append(b, '\n'), true
}

// appendAttr appends a's key and value, preceded by a separator if sep, or
// reports false. An empty key, a group, a LogValuer or an Any value is
// refused: those are the cases where slog elides, nests, resolves or
// marshals.
func (h *handler) appendAttr(b []byte, a slog.Attr, sep bool) ([]byte, bool) {
	kc := classify(a.Key)
	if kc&classBad != 0 || a.Key == "" {
		return b, false
	}
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		c := classify(s)
		if c&classBad != 0 {
			return b, false
		}
		b = h.appendKey(b, a.Key, kc, sep)
		b = h.appendSimple(b, s, c)
	case slog.KindInt64:
		b = h.appendKey(b, a.Key, kc, sep)
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = h.appendKey(b, a.Key, kc, sep)
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if !h.json {
			b = h.appendKey(b, a.Key, kc, sep)
			b = strconv.AppendFloat(b, f, 'g', -1, 64)
			break
		}
		// encoding/json refuses NaN and infinities and switches to its
		// own exponent form outside [1e-6, 1e21); within it, it is
		// strconv's 'f' form, -0 included.
		if abs := math.Abs(f); abs != 0 && !(abs >= 1e-6 && abs < 1e21) {
			return b, false
		}
		b = h.appendKey(b, a.Key, kc, sep)
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
	case slog.KindBool:
		b = h.appendKey(b, a.Key, kc, sep)
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = h.appendKey(b, a.Key, kc, sep)
		if h.json {
			b = strconv.AppendInt(b, int64(v.Duration()), 10)
		} else {
			b = append(b, v.Duration().String()...)
		}
	case slog.KindTime:
		var ok bool
		b = h.appendKey(b, a.Key, kc, sep)
		if b, ok = h.appendTime(b, v.Time()); !ok {
			return b, false
		}
	default:
		return b, false
	}
	return b, true
}

// appendSep appends the separator between attributes.
func (h *handler) appendSep(b []byte) []byte {
	if h.json {
		return append(b, ',')
	}
	return append(b, ' ')
}

// appendKey appends a key of class c that the caller has checked is simple.
func (h *handler) appendKey(b []byte, key string, c uint8, sep bool) []byte {
	if sep {
		b = h.appendSep(b)
	}
	b = h.appendSimple(b, key, c)
	if h.json {
		return append(b, ':')
	}
	return append(b, '=')
}

// appendString appends s as slog writes a string, or reports false if s is
// not simple.
func (h *handler) appendString(b []byte, s string) ([]byte, bool) {
	c := classify(s)
	if c&classBad != 0 {
		return b, false
	}
	return h.appendSimple(b, s, c), true
}

// appendSimple appends a simple string s of class c. Being simple, s needs
// no escaping in either format, and the text handler's strconv.Quote
// reduces to a pair of quotes, needed when s is empty or holds a space or
// '='.
func (h *handler) appendSimple(b []byte, s string, c uint8) []byte {
	if !h.json && c&classQuote == 0 && s != "" {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Byte classes, ORed over a string by classify.
const (
	// classBad marks a byte that makes a string not simple: outside
	// printable ASCII, '"' or '\\'. Escaping those is left to slog.
	classBad = 1 << iota
	// classQuote marks a byte for which the text handler quotes a
	// string: space and '='.
	classQuote
)

// byteClass holds the class of every byte; it is never written after
// initialisation.
var byteClass = func() (t [256]uint8) {
	for c := range t {
		if c < ' ' || c > '~' || c == '"' || c == '\\' {
			t[c] |= classBad
		}
		if c == ' ' || c == '=' {
			t[c] |= classQuote
		}
	}
	return t
}()

// classify returns the union of the classes of the bytes of s, in one pass
// over it: the request path is the longest string of a typical record.
func classify(s string) uint8 {
	var c uint8
	for i := 0; i < len(s); i++ {
		c |= byteClass[s[i]]
	}
	return c
}
