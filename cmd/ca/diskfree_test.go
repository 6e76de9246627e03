package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestLowDisk: a review filled a SQLite node's disk and /readyz said
// ready while every write failed. Under 64 MiB free it says why; with
// room, or when the space cannot be read, it says nothing. The reason
// names no figure (it is logged each time it changes; the figure is in
// the error beside it). The real file system holding a test directory is
// read too.
func TestLowDisk(t *testing.T) {
	db := filepath.Join(t.TempDir(), "strongroom.db")
	if r, _ := lowDisk(db); r != "" {
		t.Fatalf("a test directory's disk (real statfs): %q", r)
	}
	was := diskFree
	defer func() { diskFree = was }()
	var asked string
	for free, want := range map[uint64]bool{lowDiskBytes - 1: true, 10 << 20: true, lowDiskBytes: false, 1 << 40: false} {
		diskFree = func(path string) (uint64, error) { asked = path; return free, nil }
		r, err := lowDisk(db)
		if (r != "") != want || want && (r != lowDiskProblem || !strings.Contains(err.Error(), fmt.Sprintf("%d MiB free", free>>20))) {
			t.Errorf("%d bytes free: %q %v, want a reason %v", free, r, err, want)
		}
		if asked != filepath.Dir(db) {
			t.Errorf("asked about %s, want the database's directory", asked)
		}
	}
	diskFree = func(string) (uint64, error) { return 0, errors.New("no statfs") }
	if r, _ := lowDisk(db); r != "" {
		t.Errorf("space that cannot be read: %q", r)
	}
}
