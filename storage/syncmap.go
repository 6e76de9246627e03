package storage

import "sync"

// syncMap is a typed wrapper over sync.Map for string→string.
type syncMap struct{ m sync.Map }

func (s *syncMap) Load(k string) (string, bool) {
	v, ok := s.m.Load(k)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func (s *syncMap) Store(k, v string) { s.m.Store(k, v) }
