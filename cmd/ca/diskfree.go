package main

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lowDiskBytes is the free space under which /readyz says a SQLite node's
// disk is nearly full: every write (issuance, revocation, the HSM's audit
// log) fails once it is (found by a review: /readyz said ready on a full
// disk while every request answered 503).
const lowDiskBytes = 64 << 20

// diskFree is the space an unprivileged writer may still use on the file
// system holding path (a variable for tests).
var diskFree = func(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// lowDiskProblem is /readyz's reason while the disk is nearly full. It
// names no figure: the reason is logged when it changes, and a figure
// changed with every MiB written (found by a review: an ERROR per MiB).
const lowDiskProblem = "the database's disk has less than 64 MiB free: writes (issuance, revocation, the HSM's audit log) fail once it is full"

// lowDisk is lowDiskProblem and the free space when the disk of the SQLite
// database at dbPath has less than lowDiskBytes free, else "" (also when
// it cannot be told: the database's own errors say more).
func lowDisk(dbPath string) (string, error) {
	free, err := diskFree(filepath.Dir(dbPath))
	if err != nil || free >= lowDiskBytes {
		return "", nil
	}
	return lowDiskProblem, fmt.Errorf("%d MiB free on the disk of %s", free>>20, dbPath)
}
