package ca

import (
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"

	"github.com/strongroom-pki/strongroom/storage/storagetest"
)

// TestLintRegistryProbe runs EVERY lint of zlint's registry (all sources)
// over a lint copy of every built-in profile × key type and prints, per
// source, how many lints exist, how many apply to any certificate our
// profiles produce, and their cost — the measurement behind lintSources
// and excludedLints (go test -v -run LintRegistryProbe ./ca).
func TestLintRegistryProbe(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("prints measurements only with -v")
	}
	db, _ := storagetest.SQLite(t)
	c, root, inter := newTestCA(t, db, nil)
	var certs []*zx509.Certificate
	for _, p := range c.Profiles() {
		for _, kt := range []string{"p256", "rsa2048", "ed25519"} {
			if !slices.Contains(p.KeyTypes, kt) {
				continue
			}
			is := inter
			if p.CA {
				is = root
			}
			csr := makeCSR(t, freshKeyOf(t, kt), "svc.example.internal", "svc.example.internal", "10.1.2.3")
			pr, err := c.prepare(Request{CSR: csr, Profile: p.Name, Issuer: is.ID(), CSRChecked: true})
			if err != nil {
				t.Fatal(err)
			}
			pr.tmpl.SerialNumber = big.NewInt(12345678901)
			b, err := buildTBS(c.linter, pr.tmpl, is.Certificate(), csr.PublicKey, is.signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			zc, err := zx509.ParseCertificate(b.lintDER)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, zc)
		}
	}
	type stat struct {
		n, applies, chosen int
		cost, chosenCost   time.Duration
		applying           []string
	}
	chosen := map[string]bool{}
	for _, n := range c.linter.Names() {
		chosen[n] = true
	}
	bySource := map[lint.LintSource]*stat{}
	type one struct {
		name string
		d    time.Duration
	}
	var costs []one
	cfg := lint.GlobalRegistry().GetConfiguration()
	for _, cl := range lint.GlobalRegistry().CertificateLints().Lints() {
		s := bySource[cl.Source]
		if s == nil {
			s = &stat{}
			bySource[cl.Source] = s
		}
		s.n++
		applies := false
		start := time.Now()
		const rounds = 20
		for i := 0; i < rounds; i++ {
			for _, zc := range certs {
				r := cl.Execute(zc, cfg)
				if r != nil && r.Status != lint.NA && r.Status != lint.NE {
					applies = true
				}
			}
		}
		d := time.Since(start) / time.Duration(rounds*len(certs))
		s.cost += d
		costs = append(costs, one{cl.Name, d})
		if applies {
			s.applies++
			s.applying = append(s.applying, cl.Name)
		}
		if chosen[cl.Name] {
			s.chosen++
			s.chosenCost += d
		}
	}
	var srcs []string
	for src := range bySource {
		srcs = append(srcs, string(src))
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		s := bySource[lint.LintSource(src)]
		line := fmt.Sprintf("%-28s %4d lints, %3d apply to our certificates, %7s/cert all; chosen %3d, %7s/cert", src, s.n, s.applies, s.cost, s.chosen, s.chosenCost)
		if len(s.applying) > 0 && len(s.applying) < 12 {
			line += " applying: " + strings.Join(s.applying, " ")
		}
		t.Log(line)
	}
	sort.Slice(costs, func(i, j int) bool { return costs[i].d > costs[j].d })
	for _, x := range costs[:20] {
		t.Logf("%-62s %8s chosen=%v", x.name, x.d, chosen[x.name])
	}
}
