package hsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// BackupSchedule is a periodic backup: the server runs m.RunBackups(ctx, s)
// in the background.
type BackupSchedule struct {
	// Dir receives the backups (typically DATA/backups); created 0700 if
	// missing. Required.
	Dir string
	// CopyDir, when set, receives a copy of each new backup (a second disk
	// or a mounted remote location), with the same retention.
	CopyDir string
	// Keep is how many newest backups each directory keeps; zero → 7.
	Keep int
	// Interval between backups; zero → 24h.
	Interval time.Duration
	// Options are passed to Backup (e.g. a backup passphrase).
	Options BackupOptions
}

const (
	backupPrefix     = "strongroom-"
	backupSuffix     = ".srbk"
	backupTimeLayout = "20060102-150405"
)

func (s BackupSchedule) withDefaults() BackupSchedule {
	if s.Keep <= 0 {
		s.Keep = 7
	}
	if s.Interval <= 0 {
		s.Interval = 24 * time.Hour
	}
	return s
}

// BackupNow writes one backup as Dir/strongroom-YYYYMMDD-HHMMSS.srbk (UTC,
// module clock), copies it to CopyDir if set, then deletes all but the
// newest Keep backups in each directory. It returns the new file's path.
// The file appears only complete (written to a temporary name, synced,
// renamed).
func (m *Module) BackupNow(ctx context.Context, s BackupSchedule) (string, error) {
	s = s.withDefaults()
	if s.Dir == "" {
		return "", errf(ErrInvalid, "backup schedule: a directory is required")
	}
	name := backupPrefix + m.now().UTC().Format(backupTimeLayout) + backupSuffix
	path := filepath.Join(s.Dir, name)
	err := WriteBackupFile(filepath.Join(s.Dir, name), true, func(w io.Writer) error { return m.Backup(ctx, w, s.Options) })
	if err != nil {
		return "", err
	}
	if s.CopyDir != "" {
		err := WriteBackupFile(filepath.Join(s.CopyDir, name), true, func(w io.Writer) error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return path, fmt.Errorf("backup written to %s but not copied: %w", path, err)
		}
	}
	for _, d := range []string{s.Dir, s.CopyDir} {
		if d == "" {
			continue
		}
		if err := pruneBackups(d, s.Keep); err != nil {
			return path, err
		}
	}
	return path, nil
}

// RunBackups backs up every Interval until ctx ends: the first backup is
// due Interval after the newest one already in Dir (now, if there is none),
// so restarts do not add backups. A failed or skipped (sealed) backup is
// logged and retried after a minute, at most one Interval later.
func (m *Module) RunBackups(ctx context.Context, s BackupSchedule) error {
	s = s.withDefaults()
	if s.Dir == "" {
		return errf(ErrInvalid, "backup schedule: a directory is required")
	}
	retry := min(time.Minute, s.Interval)
	for {
		newest, err := newestBackup(s.Dir)
		if err != nil {
			m.log.Warn("hsm backup schedule: listing backups", "err", err)
		}
		wait := time.Duration(0)
		if !newest.IsZero() {
			wait = newest.Add(s.Interval).Sub(m.now())
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		path, err := m.BackupNow(ctx, s)
		if err == nil {
			m.log.Info("hsm scheduled backup written", "path", path)
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.log.Warn("hsm scheduled backup failed; will retry", "err", err, "retry_in", retry)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// WriteBackupFile writes a new backup file at final, never replacing one:
// fill writes it into a temporary file in the same directory (made first,
// so a directory that cannot take it fails before anything is audited as
// taken), synced, then linked into place, which fails if anything has the
// name meanwhile, a dangling symlink included (a rename would replace it).
// A crash leaves a hidden temporary file, never a torn or empty file under
// a backup's name. mkdir makes a missing directory (scheduled backups);
// without it a missing directory is an error (an operator's --out).
func WriteBackupFile(final string, mkdir bool, fill func(io.Writer) error) error {
	dir := filepath.Dir(final)
	if mkdir {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if _, err := os.Lstat(final); err == nil {
		return errf(ErrExists, "backup: %s already exists", final)
	}
	f, err := os.CreateTemp(dir, ".srbk-*.tmp")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Link(tmp, final)
	}
	os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		return errf(ErrExists, "backup: %s already exists", final)
	}
	if err != nil {
		return fmt.Errorf("backup: writing %s: %w", final, err)
	}
	return nil
}

// listBackups returns the backup file names in dir, oldest first (the
// names sort by time).
func listBackups(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			if _, err := backupTime(n); err == nil {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

func backupTime(name string) (time.Time, error) {
	return time.Parse(backupTimeLayout, strings.TrimSuffix(strings.TrimPrefix(name, backupPrefix), backupSuffix))
}

func newestBackup(dir string) (time.Time, error) {
	names, err := listBackups(dir)
	if err != nil || len(names) == 0 {
		return time.Time{}, err
	}
	return backupTime(names[len(names)-1])
}

func pruneBackups(dir string, keep int) error {
	names, err := listBackups(dir)
	if err != nil {
		return fmt.Errorf("backup retention in %s: %w", dir, err)
	}
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return fmt.Errorf("backup retention: %w", err)
		}
		names = names[1:]
	}
	return nil
}
