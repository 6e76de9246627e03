package hsm

import "context"

// Nodes sharing one keystore each cache the keys they opened, so another
// node may rotate a key after this one cached it and then sign, encrypt,
// wrap or MAC with a version this node has not loaded. An operation that
// meets such data reads the key again, once, with refreshKey under m.mu —
// what changeKey does before a change — and looks again.
//
// The reads are bounded by one per call, whatever the data says. Versions
// are only ever added above a key's newest (a rotation inserts the next
// number; no single version is ever deleted), so a version at or below the
// newest one cached that the cache lacks does not exist: it is refused
// without a read. A version above it (or, for Unwrap and VerifyHMAC, whose
// data names no version, data no cached version accepts) costs one read of
// that one key; after it the cache holds every stored version and the call
// answers from it without reading again. A made-up version number or a
// forged blob therefore costs one indexed read, like a cold cache, never a
// loop. Callers waiting for the same new version read it once between them:
// the reads are serialised by m.mu and the later ones find it cached.

// versionOf returns version v of ko (0: the current one). When ko lacks v
// and v is above ko's newest, the key is read again; the key returned is
// then the one as stored now. The version is nil when the key has no v.
func (s *Session) versionOf(ctx context.Context, ko *keyObject, v int, need Usage) (*keyObject, *keyVersion, error) {
	if kv := ko.version(v); kv != nil || v <= ko.current().version {
		return ko, kv, nil
	}
	ko, err := s.reloadKey(ctx, ko.id, need, func(c *keyObject) bool { return c.version(v) != nil })
	if err != nil {
		return nil, nil, err
	}
	return ko, ko.version(v), nil
}

// newerVersions reads the key again and returns its versions above the
// newest one ko holds, oldest first. It is for data that names no version
// (wrapped blobs, MACs), once no version ko holds accepts it.
func (s *Session) newerVersions(ctx context.Context, ko *keyObject, need Usage) ([]*keyVersion, error) {
	newest := ko.current().version
	fresh, err := s.reloadKey(ctx, ko.id, need, func(c *keyObject) bool { return c.current().version > newest })
	if err != nil {
		return nil, err
	}
	var out []*keyVersion
	for _, kv := range fresh.versions {
		if kv.version > newest {
			out = append(out, kv)
		}
	}
	return out, nil
}

// reloadKey returns the key as useKey does, under m.mu: the cached key if it
// already has what the caller lacked (another call read it meanwhile), else
// the key as stored now, published in the cache by refreshKey. A key
// destroyed on another node is ErrNotFound and forgotten here. The stored
// attributes decide what the session may do with the key read again.
func (s *Session) reloadKey(ctx context.Context, id string, need Usage, has func(*keyObject) bool) (*keyObject, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	ko, err := s.useKey(ctx, id, need)
	if err != nil || has(ko) {
		return ko, err
	}
	st, err := s.live()
	if err != nil {
		return nil, err
	}
	fresh, err := s.m.refreshKey(ctx, st, ko)
	if err != nil || fresh == ko {
		return fresh, err
	}
	return s.useKey(ctx, id, need)
}
