package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/strongroom-pki/strongroom/config"
)

// undo removes, when a command that creates a data directory fails, exactly
// what that command created: a retry with corrected arguments then starts
// from the same place, and a file that existed before is never touched.
type undo struct{ paths []string }

// note records path if nothing exists there yet; call it before creating
// the file or directory.
func (u *undo) note(paths ...string) {
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			u.paths = append(u.paths, p)
		}
	}
}

// noteDB records the SQLite database file (and its journal files) that
// opening cfg's database in dir would create. A PostgreSQL database is not
// this command's to remove.
func (u *undo) noteDB(cfg *config.Config, dir string) {
	if cfg.Database.Driver != "sqlite" {
		return
	}
	p := cfg.DatabaseDSN(dir)
	if p == "" || p == ":memory:" || strings.HasPrefix(p, "file:") || strings.Contains(p, "?") {
		return // not a plain file name
	}
	u.note(p, p+"-wal", p+"-shm", p+"-journal")
}

// run removes what was noted, newest first, so files go before the
// directory that holds them. A directory that is not empty (the operator
// put something there meanwhile) stays.
func (u *undo) run() {
	for i := len(u.paths) - 1; i >= 0; i-- {
		os.Remove(u.paths[i])
	}
	u.paths = nil
}
