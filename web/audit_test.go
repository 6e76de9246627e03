package web

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/storage"
)

// TestConsoleAudit: an admin key reads the HSM's audit log (a real module
// on the console's database), newest first, 100 to a page; the chain
// check says intact, and after an entry is edited in the database names
// that entry; a read-only key may not look.
func TestConsoleAudit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(o *Options, db *storage.DB) {
		m, err := hsm.New(ctx, hsm.Options{Store: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(ctx) })
		if _, err := m.Initialize(ctx, hsm.InitOptions{Method: hsm.MethodKeyFile, KeyFile: filepath.Join(t.TempDir(), "k"),
			OfficerName: "officer", OfficerPIN: "officer-pin-1"}); err != nil {
			t.Fatal(err)
		}
		officer, err := m.Login(ctx, "officer", "officer-pin-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := officer.CreateUser(ctx, "app", hsm.RoleUser, "app-pin-12345"); err != nil {
			t.Fatal(err)
		}
		app, err := m.Login(ctx, "app", "app-pin-12345")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 120 {
			if _, err := app.GenerateKey(ctx, hsm.KeySpec{Type: hsm.HMACSHA256, Label: fmt.Sprintf("k%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		o.Audit, o.VerifyAudit = db, m.VerifyAudit
	})
	b := e.browser()
	b.login("admin")
	resp, page := b.do("GET", "/ui/audit", nil)
	rows := regexp.MustCompile(`<tr><td>(\d+)</td>`).FindAllStringSubmatch(page, -1)
	if resp.StatusCode != 200 || len(rows) != 100 || !strings.Contains(page, "key.generate") || !strings.Contains(page, `id="older"`) {
		t.Fatalf("audit page: %d, %d rows\n%s", resp.StatusCode, len(rows), page)
	}
	first, _ := strconv.Atoi(rows[0][1])
	second, _ := strconv.Atoi(rows[1][1])
	if second != first-1 {
		t.Fatalf("not newest first: %d then %d", first, second)
	}
	older := regexp.MustCompile(`href="/ui/audit\?to=(\d+)"`).FindStringSubmatch(page)[1]
	_, page2 := b.do("GET", "/ui/audit?to="+older, nil)
	if r2 := regexp.MustCompile(`<tr><td>(\d+)</td>`).FindAllStringSubmatch(page2, -1); len(r2) == 0 || r2[0][1] != older || r2[len(r2)-1][1] != "1" {
		t.Fatalf("older page starts at %v", r2)
	}
	if strings.Contains(page+page2, "pin-1") {
		t.Fatal("a PIN is on the audit page")
	}
	if _, page := b.do("GET", "/ui/audit?verify=1", nil); !strings.Contains(page, `id="chain-ok"`) ||
		!regexp.MustCompile(`id="chain-auth">Authenticated: head MAC verified: the log up to #\d+ is as the HSM left it; authentication began at #1; .*bound to the unseal material`).MatchString(page) ||
		!regexp.MustCompile(`id="chain-head">Head: #\d+ <code>[0-9a-f]{64}</code>`).MatchString(page) {
		t.Fatalf("verify: %s", page)
	}
	if _, err := e.db.Exec(ctx, `UPDATE hsm_audit SET details = 'edited' WHERE seq = 7`); err != nil {
		t.Fatal(err)
	}
	if _, page := b.do("GET", "/ui/audit?verify=1", nil); !strings.Contains(page, `id="chain-bad"`) || !strings.Contains(page, "entry #7") {
		t.Fatalf("verify after an edit: %s", page)
	}
	if resp, _ := b.do("GET", "/ui/audit?to=abc", nil); resp.StatusCode != 400 {
		t.Fatalf("bad to: %d", resp.StatusCode)
	}
	r := e.browser()
	r.login("reader")
	if resp, _ := r.do("GET", "/ui/audit", nil); resp.StatusCode != 403 {
		t.Fatalf("reader on the audit page: %d", resp.StatusCode)
	}
}
