package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// crlMarkFile, in the data directory, records per issuer the newest CRL
// this node has served.
const crlMarkFile = "crl-served.json"

// crlMark keeps, outside the database, the number of the newest CRL this
// node has served of each issuer, so that a start on a database that knows
// no CRL that new can warn: the database was restored from an older backup
// (or replaced), and what was recorded after that backup — revocations,
// blocked keys — is forgotten. The HSM audit log cannot tell: it lives in
// the same database and goes back with it. A CRL is stored before any node
// serves it, so a database that was not rolled back always knows a number
// at least as high; the file being behind (a write lost in a crash, a data
// directory restored with the database) only means no warning.
type crlMark struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
	// served is what the file held at start, raised by record.
	served map[string]crlMarkEntry
}

type crlMarkEntry struct {
	Number     int64     `json:"number"`
	ThisUpdate time.Time `json:"this_update"`
}

// openCRLMark reads dir's record. A missing file is an empty record; an
// unreadable one is logged and replaced at the next record.
func openCRLMark(dir string, log *slog.Logger) *crlMark {
	m := &crlMark{path: filepath.Join(dir, crlMarkFile), log: log, served: map[string]crlMarkEntry{}}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m
	}
	if err == nil {
		err = json.Unmarshal(b, &m.served)
	}
	if err != nil {
		log.Warn("reading the record of served CRLs; starting a new one", "file", m.path, "err", err)
		m.served = map[string]crlMarkEntry{}
	}
	return m
}

// crlNumbers is what check reads of the database (*storage.DB).
type crlNumbers interface {
	LatestCRLNumber(ctx context.Context, issuerID string, delta bool) (int64, error)
}

// check warns for each issuer whose recorded CRL is newer than every CRL the
// database holds. It is called before the CRL builder loads or builds
// anything. A database that does not answer is logged and checked no
// further: the builder's own start reports it.
func (m *crlMark) check(ctx context.Context, db crlNumbers, issuers []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range issuers {
		seen, ok := m.served[id]
		if !ok {
			continue
		}
		var newest int64 // 0: the database holds no CRL of the issuer
		for _, delta := range []bool{false, true} {
			n, err := db.LatestCRLNumber(ctx, id, delta)
			if err != nil && !core.IsNotFound(err) {
				m.log.Warn("checking the database against the CRLs this node served", "issuer", id, "err", err)
				return
			}
			newest = max(newest, n)
		}
		if newest >= seen.Number {
			continue
		}
		m.log.Warn("the database is older than CRLs this node already served (restored from an older backup?): "+
			"revocations and blocked keys recorded after that backup are forgotten and must be made again; "+
			"CRL numbers keep increasing",
			"issuer", id, "served_crl", seen.Number, "served_this_update", seen.ThisUpdate,
			"database_crl", newest, "file", m.path)
	}
}

// published is the number of the newest CRL of issuerID this node has
// served (crl.Options.Published): the next CRL is numbered above it, even
// if this node's clock has gone back since.
func (m *crlMark) published(issuerID string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served[issuerID].Number
}

// record notes c if it is newer than the recorded CRL of its issuer, and
// writes the file (crl.Options.Served). A failed write is logged: it only
// weakens the check at the next start.
func (m *crlMark) record(c storage.CRL) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Number <= m.served[c.IssuerID].Number {
		return
	}
	m.served[c.IssuerID] = crlMarkEntry{Number: c.Number, ThisUpdate: c.ThisUpdate}
	if err := m.write(); err != nil {
		m.log.Warn("recording the served CRL outside the database", "issuer", c.IssuerID, "file", m.path, "err", err)
	}
}

// write replaces the file (writeFileAtomic), so a crash leaves the old
// record or the new one, never a torn one.
func (m *crlMark) write() error {
	b, err := json.MarshalIndent(m.served, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(m.path, append(b, '\n'), 0o600)
}
