package logfmt

import (
	"sync/atomic"
	"time"
)

// stamps caches the formatted whole second of the last time written, shared
// by a handler and the handlers derived from it: records a server logs come
// many to the second, and formatting a date is the dearest part of a line.
type stamps struct {
	last atomic.Pointer[stamp]
}

// stamp is one second in one location, formatted as RFC 3339 split before
// the fraction of a second.
type stamp struct {
	sec  int64
	loc  *time.Location
	date []byte // "2006-01-02T15:04:05"
	zone []byte // "Z" or "-07:00"
}

// get returns the stamp of the second holding t, whose year the caller has
// checked is in [0, 9999]. A zone offset changes only at a whole second, so
// the second and the location determine date and zone.
func (c *stamps) get(t time.Time) *stamp {
	sec, loc := t.Unix(), t.Location()
	if s := c.last.Load(); s != nil && s.sec == sec && s.loc == loc {
		return s
	}
	f := time.Unix(sec, 0).In(loc).AppendFormat(make([]byte, 0, 32), time.RFC3339)
	const dateLen = len("2006-01-02T15:04:05")
	s := &stamp{sec: sec, loc: loc, date: f[:dateLen], zone: f[dateLen:]}
	c.last.Store(s)
	return s
}

// appendTime appends t as slog writes a time: RFC 3339 with milliseconds in
// text (slog's appendRFC3339Millis: always three digits), RFC 3339 with
// nanoseconds in JSON (time.RFC3339Nano: up to nine digits, trailing zeros
// and a bare point dropped). A year outside [0, 9999] is refused: JSON then
// adds an error, and text would not be RFC 3339.
func (h *handler) appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	s := h.stamps.get(t)
	if h.json {
		b = append(b, '"')
	}
	b = append(b, s.date...)
	ns := t.Nanosecond()
	if !h.json {
		ms := ns / 1e6
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	} else if ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	b = append(b, s.zone...)
	if h.json {
		b = append(b, '"')
	}
	return b, true
}
