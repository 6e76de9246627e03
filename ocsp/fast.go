package ocsp

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultFastEntries is how many GET answers are kept ready to write when
// Options.FastEntries is zero: about 35 MiB of headers and indexes beside
// the memory cache, whose DER they share; about 90 MiB with Redis, whose
// answers arrive as copies.
const defaultFastEntries = 65536

// fastAnswers keeps GET answers by request target, ready for the plain
// listener's fast lane (server.FastHandler): a cached GET is a map read and
// a copy, with no base64, no ASN.1 and no second cache lookup. An entry is
// made only from the answer to a GET of the same target (by the ordinary
// path, or by the lane answering the same way), so the lane answers exactly
// what the ordinary path would, until the answer is due for refresh or its
// certificate's cached answers are invalidated.
type fastAnswers struct {
	max int

	mu       sync.RWMutex
	byTarget map[string]*fastEntry
	byKey    map[string][]string // cache key → targets answered from it
	gen      uint64              // counts invalidations
}

type fastEntry struct {
	key       string
	der       []byte
	etag      string
	refreshAt time.Time // nextUpdate - refreshBefore
	// The header fields around max-age, which changes every second, and
	// Content-Length (not sent with a 304).
	head1, head2, clen string
}

func newFastAnswers(max int) *fastAnswers {
	return &fastAnswers{max: max, byTarget: map[string]*fastEntry{}, byKey: map[string][]string{}}
}

// generation is read before an answer is made; put refuses the answer if
// an invalidation ran since, as the answer may predate the revocation.
func (f *fastAnswers) generation() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen
}

// newFastEntry prepares a to be written by the lane.
func newFastEntry(a answer, refreshAt time.Time) *fastEntry {
	e := &fastEntry{key: a.key, der: a.der, etag: a.etag, refreshAt: refreshAt}
	var b []byte
	b = append(b, "Content-Type: "+contentTypeOCSP+"\r\nCache-Control: max-age="...)
	e.head1 = string(b)
	b = append(b[:0], ", public, no-transform, must-revalidate\r\nLast-Modified: "...)
	b = appendHTTPDate(b, a.thisUpdate)
	b = append(b, "\r\nExpires: "...)
	b = appendHTTPDate(b, a.nextUpdate)
	b = append(b, "\r\nEtag: "...)
	b = append(b, a.etag...)
	b = append(b, "\r\n"...)
	e.head2 = string(b)
	e.clen = "Content-Length: " + strconv.Itoa(len(a.der)) + "\r\n"
	return e
}

// put prepares a (an answer with an ETag) for the lane and keeps it for
// target when it may be cached, unless an invalidation ran since gen was
// read. It returns the prepared entry either way.
func (f *fastAnswers) put(target string, a answer, refreshAt time.Time, gen uint64) *fastEntry {
	e := newFastEntry(a, refreshAt)
	if f.max <= 0 || a.key == "" || a.etag == "" {
		return e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return e
	}
	if old := f.byTarget[target]; old != nil {
		f.unlink(target, old.key)
	} else if len(f.byTarget) >= f.max {
		for t, old := range f.byTarget { // a random entry
			delete(f.byTarget, t)
			f.unlink(t, old.key)
			break
		}
	}
	f.byTarget[target] = e
	f.byKey[e.key] = append(f.byKey[e.key], target)
	return e
}

// unlink removes target from key's list; f.mu is held.
func (f *fastAnswers) unlink(target, key string) {
	ts := f.byKey[key]
	for i, t := range ts {
		if t == target {
			ts[i] = ts[len(ts)-1]
			ts = ts[:len(ts)-1]
			break
		}
	}
	if len(ts) == 0 {
		delete(f.byKey, key)
	} else {
		f.byKey[key] = ts
	}
}

// drop forgets every answer made from the cache keys.
func (f *fastAnswers) drop(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	for _, k := range keys {
		for _, t := range f.byKey[k] {
			delete(f.byTarget, t)
		}
		delete(f.byKey, k)
	}
}

// dropAll forgets every answer.
func (f *fastAnswers) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	clear(f.byTarget)
	clear(f.byKey)
}

func (f *fastAnswers) get(target string) *fastEntry {
	f.mu.RLock()
	e := f.byTarget[target]
	f.mu.RUnlock()
	return e
}

// AppendFast answers a GET or HEAD of target for the plain listener's fast
// lane (server.FastHandler): from the answers kept ready, or else as the
// ordinary path would (a fresh or cached answer, an OCSP error status),
// keeping the answer for the next time. A target with %-escapes is left to
// net/http, which judges their validity (a bad escape is its 400).
func (r *Responder) AppendFast(hdr []byte, target, ifNoneMatch string) ([]byte, int, []byte, bool) {
	now := r.now()
	e := r.fast.get(target)
	if e == nil || !now.Before(e.refreshAt) {
		if strings.IndexByte(target, '%') >= 0 {
			return hdr, 0, nil, false
		}
		gen := r.fast.generation()
		ctx, cancel := context.WithTimeout(context.Background(), laneAnswerTimeout)
		a := r.respond(ctx, r.decodeGET(target))
		cancel()
		if a.etag == "" { // an error status: not for caches
			hdr = append(hdr, "Content-Type: "+contentTypeOCSP+"\r\nCache-Control: no-store\r\nContent-Length: "...)
			hdr = strconv.AppendInt(hdr, int64(len(a.der)), 10)
			return append(hdr, "\r\n"...), 200, a.der, true
		}
		if !r.keepable(target) {
			e = newFastEntry(a, r.refreshAt(a))
		} else {
			e = r.fast.put(target, a, r.refreshAt(a), gen)
		}
		now = r.now()
	}
	hdr = append(hdr, e.head1...)
	hdr = strconv.AppendInt(hdr, max(int64(e.refreshAt.Sub(now)/time.Second), 0), 10)
	hdr = append(hdr, e.head2...)
	if ifNoneMatch != "" && strings.Contains(ifNoneMatch, e.etag) {
		return hdr, 304, nil, true
	}
	hdr = append(hdr, e.clen...)
	return hdr, 200, e.der, true
}

// refreshAt is when a is replaced by a fresh answer.
func (r *Responder) refreshAt(a answer) time.Time { return a.nextUpdate.Add(-r.refreshBefore) }

// laneAnswerTimeout bounds the status lookup of an answer made in the fast
// lane, which has no client-bound request context.
const laneAnswerTimeout = 10 * time.Second
