package ocsp

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// defaultFastEntries is how many GET answers are kept ready to write when
// Options.FastEntries is zero: about 100 MiB at most with P-256 responder
// certificates.
const defaultFastEntries = 65536

// fastAnswers keeps GET answers by request target, ready for the plain
// listener's fast lane (server.FastHandler): a cached GET is a map read and
// a copy, with no base64, no ASN.1 and no second cache lookup. An entry is
// made only by a GET the ordinary path answered from the same target, so
// the lane answers exactly what the ordinary path would, until the answer
// is due for refresh or its certificate's cached answers are invalidated.
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

func (f *fastAnswers) put(target string, a answer, refreshAt time.Time, gen uint64) {
	if f.max <= 0 || a.key == "" || a.etag == "" {
		return
	}
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

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return
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

// AppendFast answers a GET or HEAD of target from the answers kept ready
// (server.FastHandler); it declines whatever the ordinary path must see.
func (r *Responder) AppendFast(hdr []byte, target, ifNoneMatch string) ([]byte, int, []byte, bool) {
	e := r.fast.get(target)
	if e == nil {
		return hdr, 0, nil, false
	}
	now := r.now()
	if !now.Before(e.refreshAt) {
		return hdr, 0, nil, false
	}
	hdr = append(hdr, e.head1...)
	hdr = strconv.AppendInt(hdr, int64(e.refreshAt.Sub(now)/time.Second), 10)
	hdr = append(hdr, e.head2...)
	if ifNoneMatch != "" && strings.Contains(ifNoneMatch, e.etag) {
		return hdr, 304, nil, true
	}
	hdr = append(hdr, e.clen...)
	return hdr, 200, e.der, true
}
