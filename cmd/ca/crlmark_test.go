package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// fakeCRLNumbers is a database's newest CRL numbers per issuer and kind.
type fakeCRLNumbers struct {
	full, delta map[string]int64
	err         error
}

func (f fakeCRLNumbers) LatestCRLNumber(_ context.Context, issuerID string, delta bool) (int64, error) {
	if f.err != nil {
		return 0, f.err
	}
	m := f.full
	if delta {
		m = f.delta
	}
	if n, ok := m[issuerID]; ok {
		return n, nil
	}
	return 0, core.ErrNotFound
}

// TestCRLMark: the newest served CRL of each issuer is kept in the data
// directory across restarts, and a start on a database holding no CRL that
// new (restored from an older backup, or empty) warns once per such issuer;
// one that holds it, or a first start, does not.
func TestCRLMark(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	m := openCRLMark(dir, log)
	m.check(ctx, fakeCRLNumbers{}, []string{"intermediate"})
	m.record(storage.CRL{IssuerID: "intermediate", Number: 100, ThisUpdate: at})
	m.record(storage.CRL{IssuerID: "intermediate", Delta: true, Number: 101, ThisUpdate: at})
	m.record(storage.CRL{IssuerID: "intermediate", Number: 50, ThisUpdate: at.Add(-time.Hour)}) // an older one loaded
	m.record(storage.CRL{IssuerID: "root", Number: 7, ThisUpdate: at})
	if logs.Len() != 0 {
		t.Fatalf("first start logged:\n%s", logs.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, crlMarkFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file: %v, %v", fi, err)
	}

	ids := []string{"intermediate", "root"}
	for _, tc := range []struct {
		name  string
		db    fakeCRLNumbers
		want  []string // in the log; nil for nothing logged
		lines int
	}{
		{"database up to date", fakeCRLNumbers{full: map[string]int64{"intermediate": 100, "root": 7},
			delta: map[string]int64{"intermediate": 101}}, nil, 0},
		{"database restored from an older backup", fakeCRLNumbers{full: map[string]int64{"intermediate": 40, "root": 7},
			delta: map[string]int64{"intermediate": 41}},
			[]string{"level=WARN", "the database is older than CRLs this node already served", "issuer=intermediate",
				"served_crl=101", "database_crl=41", "forgotten"}, 1},
		{"empty database", fakeCRLNumbers{}, []string{"issuer=intermediate", "issuer=root", "database_crl=0"}, 2},
		{"database not answering", fakeCRLNumbers{err: errors.New("connection refused")},
			[]string{"checking the database against the CRLs this node served"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			openCRLMark(dir, log).check(ctx, tc.db, ids)
			got := logs.String()
			if n := strings.Count(got, "\n"); n != tc.lines {
				t.Fatalf("%d lines logged, want %d:\n%s", n, tc.lines, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("log lacks %q:\n%s", w, got)
				}
			}
		})
	}

	// An unreadable record is logged and replaced.
	if err := os.WriteFile(filepath.Join(dir, crlMarkFile), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	m = openCRLMark(dir, log)
	if !strings.Contains(logs.String(), "reading the record of served CRLs") {
		t.Fatalf("torn record: %s", logs.String())
	}
	m.record(storage.CRL{IssuerID: "root", Number: 8, ThisUpdate: at})
	if got := openCRLMark(dir, log).served["root"].Number; got != 8 {
		t.Fatalf("rewritten record holds %d, want 8", got)
	}
}
