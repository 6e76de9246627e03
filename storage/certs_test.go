package storage_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

func newSerial(t *testing.T) core.Serial {
	t.Helper()
	s, err := core.NewSerial()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// issue walks one certificate through reserve → intent → stored.
func issue(t *testing.T, db *storage.DB, issuer string, names []string, notAfter time.Time) core.Serial {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	s := newSerial(t)
	c := &core.Certificate{Serial: s, IssuerID: issuer, Profile: "tls-server", Requester: "test", CreatedAt: now}
	if err := db.ReserveSerial(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Names, c.Subject, c.NotBefore, c.NotAfter, c.TBS = names, names[0], now, notAfter, []byte("tbs-"+string(s))
	if err := db.RecordIntent(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	if err := db.StoreIssued(ctx, s, []byte("der-"+string(s)), now); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCertificateLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		s := newSerial(t)
		c := &core.Certificate{Serial: s, IssuerID: "intermediate", Profile: "tls-server", Requester: "apikey:x", CreatedAt: now}
		if err := db.ReserveSerial(ctx, c); err != nil {
			t.Fatal(err)
		}
		// A serial is single-use: a second reservation fails, whatever its content.
		if err := db.ReserveSerial(ctx, &core.Certificate{Serial: s, IssuerID: "other", Profile: "p", Requester: "r", CreatedAt: now}); !errors.Is(err, storage.ErrSerialTaken) {
			t.Fatalf("second ReserveSerial = %v, want ErrSerialTaken", err)
		}
		// Storing before the intent is recorded is refused.
		if err := db.StoreIssued(ctx, s, []byte("der"), now); core.KindOf(err) != core.KindConflict {
			t.Fatalf("StoreIssued before intent = %v, want conflict", err)
		}
		c.Names, c.Subject = []string{"a.example", "A.example", "10.0.0.1"}, "a.example"
		c.NotBefore, c.NotAfter, c.TBS = now, now.Add(time.Hour), []byte{1, 2, 3}
		if err := db.RecordIntent(ctx, c, now); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordIntent(ctx, c, now); core.KindOf(err) != core.KindConflict {
			t.Fatalf("second RecordIntent = %v, want conflict", err)
		}
		got, err := db.GetCertificate(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != core.StatusReserved || !bytes.Equal(got.TBS, []byte{1, 2, 3}) || len(got.DER) != 0 || !got.NotAfter.Equal(now.Add(time.Hour)) {
			t.Fatalf("reserved row = %+v", got)
		}
		if err := db.RevokeCertificate(ctx, s, core.ReasonKeyCompromise, now, time.Time{}); core.KindOf(err) != core.KindConflict {
			t.Fatalf("revoking a reserved certificate = %v, want conflict", err)
		}
		if err := db.StoreIssued(ctx, s, []byte("der"), now); err != nil {
			t.Fatal(err)
		}
		// The intent's TBS is cleared once the certificate is stored (its
		// DER holds the same bytes).
		var tbsGone bool
		if err := db.QueryRow(ctx, `SELECT tbs IS NULL FROM certificates WHERE serial = ?`, string(s)).Scan(&tbsGone); err != nil || !tbsGone {
			t.Fatalf("stored row keeps its TBS: %v %v", tbsGone, err)
		}
		if got, err := db.GetCertificate(ctx, s); err != nil || got.Status != core.StatusValid || len(got.TBS) != 0 || string(got.DER) != "der" {
			t.Fatalf("stored row = %+v, %v", got, err)
		}
		if err := db.StoreIssued(ctx, s, []byte("other"), now); core.KindOf(err) != core.KindConflict {
			t.Fatalf("second StoreIssued = %v, want conflict", err)
		}
		if err := db.RevokeCertificate(ctx, s, core.ReasonSuperseded, now, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCertificate(ctx, s, core.ReasonCessationOfOperation, now, time.Time{}); core.KindOf(err) != core.KindConflict {
			t.Fatalf("second revocation = %v, want conflict", err)
		}
		// keyCompromise may follow another reason, once; the revocation
		// date stays.
		invalid := now.Add(-time.Minute)
		if err := db.RevokeCertificate(ctx, s, core.ReasonKeyCompromise, now.Add(time.Hour), invalid); err != nil {
			t.Fatalf("keyCompromise after superseded: %v", err)
		}
		// Said once: a review saw "… is revoked already (keyCompromise):
		// revoked for keyCompromise already".
		if err := db.RevokeCertificate(ctx, s, core.ReasonKeyCompromise, now, time.Time{}); core.KindOf(err) != core.KindConflict ||
			err.Error() != "certificate "+string(s)+" is revoked already (keyCompromise)" {
			t.Fatalf("keyCompromise twice = %v, want conflict", err)
		}
		got, _ = db.GetCertificate(ctx, s)
		if got.Status != core.StatusRevoked || got.RevocationReason != core.ReasonKeyCompromise || !got.RevokedAt.Equal(now) ||
			!got.InvalidityDate.Equal(invalid) || string(got.DER) != "der" {
			t.Fatalf("revoked row = %+v", got)
		}
		if _, err := db.GetCertificate(ctx, newSerial(t)); !core.IsNotFound(err) {
			t.Fatalf("unknown serial: %v", err)
		}
		if err := db.RevokeCertificate(ctx, newSerial(t), 0, now, time.Time{}); !core.IsNotFound(err) {
			t.Fatalf("revoking unknown serial: %v", err)
		}
	})
}

func TestListCertificates(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		var all []core.Serial
		for i := 0; i < 7; i++ {
			all = append(all, issue(t, db, "i1", []string{"h.example", "x.example"}, now.Add(time.Duration(i)*time.Hour)))
		}
		other := issue(t, db, "i2", []string{"other.example"}, now.Add(48*time.Hour))
		// A reserved-only row is not listed by default.
		_ = db.ReserveSerial(ctx, &core.Certificate{Serial: newSerial(t), IssuerID: "i1", Profile: "p", Requester: "r", CreatedAt: now})

		seen := map[core.Serial]bool{}
		var cursor core.Serial
		pages := 0
		for {
			page, next, err := db.ListCertificates(ctx, storage.CertFilter{Limit: 3, After: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range page {
				if seen[c.Serial] {
					t.Fatalf("serial %s listed twice", c.Serial)
				}
				seen[c.Serial] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 8 || pages != 3 {
			t.Fatalf("listed %d certificates in %d pages, want 8 in 3", len(seen), pages)
		}
		cases := []struct {
			name string
			f    storage.CertFilter
			want int
		}{
			{"by name", storage.CertFilter{Name: "X.EXAMPLE"}, 7},
			{"by other name", storage.CertFilter{Name: "other.example"}, 1},
			{"by issuer", storage.CertFilter{IssuerID: "i2"}, 1},
			{"expiring window", storage.CertFilter{ExpiringAfter: now.Add(2 * time.Hour), ExpiringBefore: now.Add(5 * time.Hour)}, 3},
			{"reserved", storage.CertFilter{Status: core.StatusReserved}, 1},
			{"revoked", storage.CertFilter{Status: core.StatusRevoked}, 2},
		}
		if err := db.RevokeCertificate(ctx, all[3], core.ReasonSuperseded, now.Add(time.Second), time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCertificate(ctx, all[1], core.ReasonKeyCompromise, now, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeCertificate(ctx, other, core.ReasonKeyCompromise, now, time.Time{}); err != nil {
			t.Fatal(err)
		}
		cases[5].want = 3
		for _, tc := range cases {
			page, _, err := db.ListCertificates(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) != tc.want {
				t.Errorf("%s: %d certificates, want %d", tc.name, len(page), tc.want)
			}
		}

		// Under: the suffix itself, names below it and wildcards, each
		// certificate once; a name that only ends with the same letters
		// (myteam.corp.internal) is not under team.corp.internal.
		want := map[core.Serial]bool{
			issue(t, db, "i3", []string{"team.corp.internal"}, now):                           true,
			issue(t, db, "i3", []string{"a.team.corp.internal", "b.team.corp.internal"}, now): true,
			issue(t, db, "i3", []string{"*.team.corp.internal"}, now):                         true,
		}
		issue(t, db, "i3", []string{"myteam.corp.internal"}, now)
		issue(t, db, "i3", []string{"team.corp.internal.evil.example"}, now)
		page, _, err := db.ListCertificates(ctx, storage.CertFilter{Under: "Team.Corp.Internal"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != len(want) {
			t.Fatalf("under team.corp.internal: %d certificates, want %d", len(page), len(want))
		}
		for _, c := range page {
			if !want[c.Serial] {
				t.Errorf("under team.corp.internal: listed %s (%v)", c.Serial, c.Names)
			}
		}
	})
}

func TestAPIKeys(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		k := &storage.APIKey{ID: "k1", Name: "deploy", Hash: bytes.Repeat([]byte{7}, 32), Scopes: []string{"issue", "read"},
			Names: []string{"team-a.corp.internal", "10.20.0.0/16"}, Profiles: []string{"tls-server"}, CreatedAt: now,
			ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		dup := *k
		dup.ID = "k2"
		if err := db.CreateAPIKey(ctx, &dup); core.KindOf(err) != core.KindConflict {
			t.Fatalf("duplicate hash = %v, want conflict", err)
		}
		got, err := db.APIKeyByHash(ctx, k.Hash)
		if err != nil || got.ID != "k1" || len(got.Scopes) != 2 || !got.RevokedAt.IsZero() ||
			strings.Join(got.Names, " ") != "team-a.corp.internal 10.20.0.0/16" || strings.Join(got.Profiles, " ") != "tls-server" || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("APIKeyByHash = %+v, %v", got, err)
		}
		if _, err := db.APIKeyByHash(ctx, []byte("nope")); !core.IsNotFound(err) {
			t.Fatalf("unknown hash: %v", err)
		}
		if err := db.TouchAPIKey(ctx, "k1", now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeAPIKey(ctx, "k1", now); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeAPIKey(ctx, "k1", now.Add(time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if err := db.RevokeAPIKey(ctx, "nope", now); !core.IsNotFound(err) {
			t.Fatalf("revoking unknown key: %v", err)
		}
		keys, err := db.APIKeys(ctx)
		if err != nil || len(keys) != 1 || !keys[0].RevokedAt.Equal(now) || !keys[0].LastUsedAt.Equal(now) {
			t.Fatalf("APIKeys = %+v, %v", keys, err)
		}
	})
}

// TestCertWriterGroupCommit runs many concurrent issuances through the
// group-commit writer, one of them colliding on a serial: every caller gets
// its own outcome, and every committed row is there.
func TestCertWriterGroupCommit(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		w := storage.NewCertWriter(db)
		defer w.Close()
		taken := newSerial(t)
		now := time.Now().UTC()
		if err := w.ReserveSerial(ctx, &core.Certificate{Serial: taken, IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		const n = 64
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func(i int) {
				s := newSerialNoT()
				if i == 0 {
					s = taken
				}
				c := &core.Certificate{Serial: s, IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}
				if err := w.ReserveSerial(ctx, c); err != nil {
					errs <- err
					return
				}
				c.Names, c.TBS, c.NotAfter = []string{"a.example", "b.example"}, []byte("tbs"), now.Add(time.Hour)
				if err := w.RecordIntent(ctx, c, now); err != nil {
					errs <- err
					return
				}
				errs <- w.StoreIssued(ctx, s, []byte("der"), now)
			}(i)
		}
		var ok, collided int
		for i := 0; i < n; i++ {
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.Is(err, storage.ErrSerialTaken):
				collided++
			default:
				t.Fatal(err)
			}
		}
		if ok != n-1 || collided != 1 {
			t.Fatalf("%d issued, %d collisions; want %d and 1", ok, collided, n-1)
		}
		page, _, err := db.ListCertificates(ctx, storage.CertFilter{Status: core.StatusValid, Name: "b.example", Limit: 1000})
		if err != nil || len(page) != n-1 {
			t.Fatalf("%d valid rows, %v", len(page), err)
		}
		if page, _, err = db.ListCertificates(ctx, storage.CertFilter{Name: "a.example", Limit: 1000}); err != nil || len(page) != n-1 {
			t.Fatalf("%d rows named a.example, %v", len(page), err)
		}
		// On PostgreSQL the batches travel pipelined; the one holding the
		// taken serial fell back to running its operations one by one.
		if pipelined, diverged := storage.PipelineCounts(w); db.Dialect() == storage.Postgres && (pipelined == 0 || diverged == 0) {
			t.Fatalf("%d batches pipelined, %d fell back; want some of each", pipelined, diverged)
		}
		w.Close()
		if err := w.ReserveSerial(ctx, &core.Certificate{Serial: newSerialNoT(), IssuerID: "i", Profile: "p", Requester: "r", CreatedAt: now}); core.KindOf(err) != core.KindUnavailable {
			t.Fatalf("after Close: %v", err)
		}
	})
}

func newSerialNoT() core.Serial {
	s, err := core.NewSerial()
	if err != nil {
		panic(err)
	}
	return s
}

// TestListCertificatesKeep: rows a Keep function refuses are dropped and
// pages refilled, so walking the cursor lists each kept certificate once,
// in serial order, and nothing else.
func TestListCertificatesKeep(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		want := map[core.Serial]bool{}
		for i := range 20 {
			name := "b.team-b.example"
			if i%4 == 0 {
				name = "a.team-a.example"
			}
			s := issue(t, db, "i1", []string{name}, now.Add(time.Hour))
			if i%4 == 0 {
				want[s] = true
			}
		}
		keep := func(c *core.Certificate) bool { return c.Names[0] == "a.team-a.example" }
		var got []core.Serial
		var cursor core.Serial
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("the cursor does not end")
			}
			page, next, err := db.ListCertificates(ctx, storage.CertFilter{Limit: 2, After: cursor, Keep: keep})
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("a page of %d, limit 2", len(page))
			}
			for _, c := range page {
				got = append(got, c.Serial)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d, want the %d kept", len(got), len(want))
		}
		for i, s := range got {
			if !want[s] || i > 0 && got[i-1] >= s {
				t.Fatalf("listed %v; want each kept serial once, in order", got)
			}
		}
	})
}

// TestListCursorHidesUnkept: a filtered listing whose scan stops before
// its page is full returns a cursor that is not the serial of a row the
// caller may not see, and walking the cursors still lists every kept row
// once, in order, and ends.
func TestListCursorHidesUnkept(t *testing.T) {
	defer storage.SetKeepScan(6, 3)()
	storagetest.Each(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		want, hidden := map[core.Serial]bool{}, map[core.Serial]bool{}
		for i := range 60 {
			name := "b.team-b.example"
			if i%9 == 0 {
				name = "a.team-a.example"
			}
			s := issue(t, db, "i1", []string{name}, now.Add(time.Hour))
			if i%9 == 0 {
				want[s] = true
			} else {
				hidden[s] = true
			}
		}
		keep := func(c *core.Certificate) bool { return c.Names[0] == "a.team-a.example" }
		var got []core.Serial
		var cursor core.Serial
		stopped := 0 // pages that ended at the scan bound, not the limit
		for pages := 0; ; pages++ {
			if pages > 200 {
				t.Fatal("the cursor does not end")
			}
			page, next, err := db.ListCertificates(ctx, storage.CertFilter{Limit: 5, After: cursor, Keep: keep})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				got = append(got, c.Serial)
			}
			if next == "" {
				break
			}
			if hidden[next] {
				t.Fatalf("the cursor %s is the serial of a row the caller may not see", next)
			}
			if len(page) < 5 {
				stopped++
			}
			if _, err := core.ParseSerial(string(next)); err != nil || next <= cursor {
				t.Fatalf("cursor %q after %q: %v", next, cursor, err)
			}
			cursor = next
		}
		if stopped == 0 {
			t.Fatal("no page stopped at the scan bound: the test shows nothing")
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d, want the %d kept", len(got), len(want))
		}
		for i, s := range got {
			if !want[s] || i > 0 && got[i-1] >= s {
				t.Fatalf("listed %v; want each kept serial once, in order", got)
			}
		}
	})
}
