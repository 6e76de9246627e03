package hsm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/storage"
	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// snapshot is what a failed unseal must leave unchanged, beyond its own
// "unseal.fail" audit entry.
type snapshot struct {
	sealed bool
	audit  int64
	meta   string
}

func snap(t *testing.T, m *Module, db *storage.DB) snapshot {
	es, err := db.HSMAudit(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	for _, e := range es {
		if e.Action != "unseal.fail" {
			seq++
		}
	}
	meta, _ := db.HSMMeta(context.Background())
	var b strings.Builder
	for _, k := range []string{metaMethod, metaWrappedKEK, metaKDF, metaShamir, metaAuditAuthFrom} {
		b.Write(meta[k])
		b.WriteByte('|')
	}
	return snapshot{m.state.Load() == nil, seq, b.String()}
}

func TestUnsealFailuresChangeNothing(t *testing.T) {
	ctx := context.Background()
	t.Run("passphrase", func(t *testing.T) {
		storagetest.Each(t, func(t *testing.T, db *storage.DB) {
			m := newModule(t, db)
			if _, err := m.Initialize(ctx, InitOptions{Method: MethodPassphrase, Passphrase: []byte("correct horse battery"), OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
				t.Fatal(err)
			}
			m.Seal()
			before := snap(t, m, db)
			err := m.Unseal(ctx, UnsealInput{Passphrase: []byte("wrong horse battery")})
			if !errors.Is(err, ErrBadUnseal) || !strings.Contains(err.Error(), "wrong passphrase") {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if after := snap(t, m, db); after != before {
				t.Fatalf("state changed: %+v → %+v", before, after)
			}
			es, _ := db.HSMAudit(ctx, 1, 0)
			if last := es[len(es)-1]; last.Action != "unseal.fail" || last.Details != "method=passphrase reason=wrong-material" {
				t.Fatalf("the failed unseal is not audited: %+v", last)
			}
			if _, err := m.Login(ctx, "co", officerPIN); !errors.Is(err, ErrSealed) {
				t.Fatalf("login while sealed: %v", err)
			}
			if err := m.Unseal(ctx, UnsealInput{Passphrase: []byte("correct horse battery")}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("keyfile", func(t *testing.T) {
		db := sqliteDB(t)
		m := newModule(t, db)
		kf := filepath.Join(t.TempDir(), "k")
		if _, err := m.Initialize(ctx, InitOptions{Method: MethodKeyFile, KeyFile: kf, OfficerName: "co", OfficerPIN: officerPIN}); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(kf); fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v", fi.Mode().Perm())
		}
		if _, err := m.Initialize(ctx, InitOptions{Method: MethodKeyFile, KeyFile: kf + "2", OfficerName: "co", OfficerPIN: officerPIN}); !errors.Is(err, ErrInitialized) {
			t.Errorf("second Initialize: %v", err)
		}
		m.Seal()
		other := filepath.Join(t.TempDir(), "other")
		os.WriteFile(other, bytes.Repeat([]byte{7}, 32), 0o600)
		before := snap(t, m, db)
		if err := m.Unseal(ctx, UnsealInput{KeyFile: other}); !errors.Is(err, ErrBadUnseal) {
			t.Fatalf("wrong key file: %v", err)
		}
		if after := snap(t, m, db); after != before {
			t.Fatalf("state changed")
		}
		// A key file an interrupted rekey left beside it is named.
		os.WriteFile(other+".new", bytes.Repeat([]byte{8}, 32), 0o600)
		if err := m.Unseal(ctx, UnsealInput{KeyFile: other}); !errors.Is(err, ErrBadUnseal) || !strings.Contains(err.Error(), other+".new is there") {
			t.Fatalf("wrong key file beside a .new one: %v", err)
		}
		if err := m.Unseal(ctx, UnsealInput{KeyFile: kf}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("shamir", func(t *testing.T) {
		storagetest.Each(t, func(t *testing.T, db *storage.DB) {
			m := newModule(t, db)
			res, err := m.Initialize(ctx, InitOptions{Method: MethodShamir, Threshold: 3, Shares: 5, OfficerName: "co", OfficerPIN: officerPIN})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Shares) != 5 {
				t.Fatalf("%d shares", len(res.Shares))
			}
			m.Seal()
			// A forged share: a valid-looking value that is not on the polynomial.
			last := "00"
			if strings.HasSuffix(res.Shares[1], last) {
				last = "01"
			}
			forged := res.Shares[1][:len(res.Shares[1])-2] + last
			// A share of another module.
			_, foreign, _, _ := splitMaster(3, 5)
			before := snap(t, m, db)
			for name, c := range map[string]struct {
				shares []string
				want   error
				msg    string
			}{
				"none":      {nil, ErrInvalid, "needs 3 of its 5"},
				"too few":   {res.Shares[:2], ErrBadUnseal, "needs 3 of its 5 shares, got 2"},
				"forged":    {[]string{res.Shares[0], forged, res.Shares[2]}, ErrBadUnseal, "share 2 is not a share"},
				"foreign":   {[]string{res.Shares[0], res.Shares[1], foreign[2]}, ErrBadUnseal, "share 3 is not a share"},
				"duplicate": {[]string{res.Shares[0], res.Shares[0], res.Shares[1]}, ErrInvalid, "given twice"},
				"garbage":   {[]string{"hello", res.Shares[0], res.Shares[1]}, ErrInvalid, "not a Strongroom share"},
			} {
				err := m.Unseal(ctx, UnsealInput{Shares: c.shares})
				if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
					t.Errorf("%s: %v, want %v containing %q", name, err, c.want, c.msg)
				}
				if after := snap(t, m, db); after != before {
					t.Fatalf("%s: state changed", name)
				}
			}
			// Any 3 of the 5 unseal.
			if err := m.Unseal(ctx, UnsealInput{Shares: []string{res.Shares[4], res.Shares[1], res.Shares[3]}}); err != nil {
				t.Fatalf("3 good shares: %v", err)
			}
			if _, err := m.Login(ctx, "co", officerPIN); err != nil {
				t.Fatal(err)
			}
		})
	})
}
