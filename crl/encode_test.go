package crl_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/crl"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
)

var (
	oidDelta      = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIDP        = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidInvalidity = asn1.ObjectIdentifier{2, 5, 29, 24}
)

func sliceSource(entries []crl.Entry) crl.EntrySource {
	return func(fn func(crl.Entry) error) error {
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// sampleEntries covers the shapes an entry can take: short and long
// serials, a serial with the top bit set (needs a leading zero), odd hex
// length, each reason, an invalidity date, and a revocation time outside
// UTCTime's range.
func sampleEntries(base time.Time) []crl.Entry {
	return []crl.Entry{
		{Serial: "1", RevokedAt: base, Reason: core.ReasonUnspecified},
		{Serial: "ff", RevokedAt: base.Add(time.Second), Reason: core.ReasonKeyCompromise},
		{Serial: "7fffffffffffffffffffffffffffffff", RevokedAt: base.Add(2 * time.Second), Reason: core.ReasonSuperseded,
			InvalidityDate: base.Add(-time.Hour)},
		{Serial: "abc", RevokedAt: base.Add(3 * time.Second), Reason: core.ReasonAACompromise},
		{Serial: "80000000000000000000000000000000000000", RevokedAt: base, Reason: core.ReasonCessationOfOperation},
		{Serial: "1234", RevokedAt: time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC), Reason: core.ReasonPrivilegeWithdrawn},
	}
}

// stdlibCRL builds the same list with crypto/x509, as the reference.
func stdlibCRL(t *testing.T, ca *ocsptest.CA, tmpl crl.Template, entries []crl.Entry) []byte {
	t.Helper()
	rl := &x509.RevocationList{Number: big.NewInt(tmpl.Number), ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate}
	for _, e := range entries {
		re := x509.RevocationListEntry{SerialNumber: e.Serial.Big(), RevocationTime: e.RevokedAt, ReasonCode: int(e.Reason)}
		if !e.InvalidityDate.IsZero() {
			v, err := asn1.MarshalWithParams(e.InvalidityDate.UTC(), "generalized")
			if err != nil {
				t.Fatal(err)
			}
			re.ExtraExtensions = []pkix.Extension{{Id: oidInvalidity, Value: v}}
		}
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, re)
	}
	if tmpl.BaseNumber > 0 {
		v, _ := asn1.Marshal(big.NewInt(tmpl.BaseNumber))
		rl.ExtraExtensions = append(rl.ExtraExtensions, pkix.Extension{Id: oidDelta, Critical: true, Value: v})
	}
	if tmpl.DistributionPoint != "" {
		type dpName struct {
			FullName []asn1.RawValue `asn1:"optional,tag:0"`
		}
		type idp struct {
			DP dpName `asn1:"optional,tag:0"`
		}
		v, err := asn1.Marshal(idp{DP: dpName{FullName: []asn1.RawValue{{Class: 2, Tag: 6, Bytes: []byte(tmpl.DistributionPoint)}}}})
		if err != nil {
			t.Fatal(err)
		}
		rl.ExtraExtensions = append(rl.ExtraExtensions, pkix.Extension{Id: oidIDP, Critical: true, Value: v})
	}
	der, err := x509.CreateRevocationList(rand.Reader, rl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestEncodeMatchesStdlib(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	keys := map[string]crypto.Signer{"p256": ocsptest.NewKey(t), "p384": p384, "rsa": rsaKey, "ed25519": edKey}
	now := time.Now().UTC().Truncate(time.Second)
	for name, key := range keys {
		ca := ocsptest.NewCA(t, "CRL test "+name, key)
		for _, tc := range []struct {
			name    string
			tmpl    crl.Template
			entries []crl.Entry
		}{
			{"empty", crl.Template{Number: 1}, nil},
			{"full", crl.Template{Number: 7, DistributionPoint: "http://127.0.0.1:8080/crl/x.crl"}, sampleEntries(now)},
			{"delta", crl.Template{Number: 9, BaseNumber: 7, DistributionPoint: "http://127.0.0.1:8080/crl/x.crl"}, sampleEntries(now)[:2]},
			{"big number", crl.Template{Number: 1<<40 + 255}, sampleEntries(now)[1:2]},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				tmpl := tc.tmpl
				tmpl.Issuer, tmpl.ThisUpdate, tmpl.NextUpdate = ca.Cert, now, now.Add(24*time.Hour)
				der, err := crl.Encode(context.Background(), tmpl, ca.Key, sliceSource(tc.entries))
				if err != nil {
					t.Fatal(err)
				}
				got, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatalf("stdlib cannot parse our CRL: %v", err)
				}
				if err := got.CheckSignatureFrom(ca.Cert); err != nil {
					t.Fatalf("signature: %v", err)
				}
				ref, err := x509.ParseRevocationList(stdlibCRL(t, ca, tmpl, tc.entries))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.RawTBSRevocationList, ref.RawTBSRevocationList) {
					t.Fatalf("TBS differs from crypto/x509's:\n ours %x\n want %x", got.RawTBSRevocationList, ref.RawTBSRevocationList)
				}
				if name == "ed25519" && !bytes.Equal(der, ref.Raw) { // deterministic signature: whole DER must match
					t.Fatalf("DER differs from crypto/x509's")
				}
				if got.Number.Int64() != tmpl.Number || len(got.RevokedCertificateEntries) != len(tc.entries) {
					t.Fatalf("number %v, %d entries; want %d, %d", got.Number, len(got.RevokedCertificateEntries), tmpl.Number, len(tc.entries))
				}
				for i, e := range got.RevokedCertificateEntries {
					want := tc.entries[i]
					if core.SerialFromBig(e.SerialNumber) != want.Serial || !e.RevocationTime.Equal(want.RevokedAt) || e.ReasonCode != int(want.Reason) {
						t.Errorf("entry %d = %v %v %d; want %+v", i, e.SerialNumber, e.RevocationTime, e.ReasonCode, want)
					}
				}
			})
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	ca := ocsptest.NewCA(t, "reject", nil)
	other := ocsptest.NewKey(t)
	now := time.Now()
	good := crl.Template{Issuer: ca.Cert, Number: 2, ThisUpdate: now, NextUpdate: now.Add(time.Hour)}
	for _, tc := range []struct {
		name    string
		tmpl    func(crl.Template) crl.Template
		signer  crypto.Signer
		entries []crl.Entry
		want    string
	}{
		{"no issuer", func(t crl.Template) crl.Template { t.Issuer = nil; return t }, ca.Key, nil, "no issuer"},
		{"zero number", func(t crl.Template) crl.Template { t.Number = 0; return t }, ca.Key, nil, "CRL number"},
		{"base not below number", func(t crl.Template) crl.Template { t.BaseNumber = 2; return t }, ca.Key, nil, "CRL number"},
		{"next before this", func(t crl.Template) crl.Template { t.NextUpdate = now.Add(-time.Hour); return t }, ca.Key, nil, "nextUpdate"},
		{"bad serial", nil, ca.Key, []crl.Entry{{Serial: "xyz", RevokedAt: now}}, "not hex"},
		{"zero serial", nil, ca.Key, []crl.Entry{{Serial: "00", RevokedAt: now}}, "not positive"},
		{"long serial", nil, ca.Key, []crl.Entry{{Serial: core.Serial(strings.Repeat("1", 41)), RevokedAt: now}}, "1-20 bytes"},
		{"bad reason", nil, ca.Key, []crl.Entry{{Serial: "1", RevokedAt: now, Reason: 7}}, "reason"},
		{"wrong signer", nil, other, nil, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := good
			if tc.tmpl != nil {
				tmpl = tc.tmpl(good)
			}
			_, err := crl.Encode(context.Background(), tmpl, tc.signer, sliceSource(tc.entries))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("source error", func(t *testing.T) {
		_, err := crl.Encode(context.Background(), good, ca.Key, func(func(crl.Entry) error) error { return fmt.Errorf("db down") })
		if err == nil || !strings.Contains(err.Error(), "db down") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestEncodeOpenSSL checks a full and a delta CRL with openssl: the
// signature verifies, and openssl verify -crl_check accepts a good leaf and
// rejects the revoked one.
func TestEncodeOpenSSL(t *testing.T) {
	dir := t.TempDir()
	ca := ocsptest.NewCA(t, "openssl CRL CA", nil)
	url := "http://127.0.0.1:8080/crl/test.crl"
	good := ca.Leaf(t, "1a2b", "", url)
	revoked := ca.Leaf(t, "9f8e7d", "", url)
	now := time.Now().UTC()
	entries := []crl.Entry{{Serial: "9f8e7d", RevokedAt: now, Reason: core.ReasonKeyCompromise, InvalidityDate: now.Add(-time.Hour)}}
	for i := 0; i < 1000; i++ { // some bulk so the length prefixes are long
		entries = append(entries, crl.Entry{Serial: core.Serial(fmt.Sprintf("%x", 1<<40+i)), RevokedAt: now, Reason: core.ReasonSuperseded})
	}
	full, err := crl.Encode(context.Background(), crl.Template{Issuer: ca.Cert, Number: 3, ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		DistributionPoint: url}, ca.Key, sliceSource(entries))
	if err != nil {
		t.Fatal(err)
	}
	delta, err := crl.Encode(context.Background(), crl.Template{Issuer: ca.Cert, Number: 4, BaseNumber: 3, ThisUpdate: now,
		NextUpdate: now.Add(time.Hour), DistributionPoint: url}, ca.Key, sliceSource(entries[:1]))
	if err != nil {
		t.Fatal(err)
	}
	caPEM := ocsptest.WritePEM(t, dir, "ca.pem", ca.Cert)
	fullPath, deltaPath := filepath.Join(dir, "full.crl"), filepath.Join(dir, "delta.crl")
	os.WriteFile(fullPath, full, 0o644)
	os.WriteFile(deltaPath, delta, 0o644)

	for _, p := range []string{fullPath, deltaPath} {
		out, err := ocsptest.Tool(t, "openssl", "crl", "-inform", "DER", "-in", p, "-CAfile", caPEM, "-noout")
		if err != nil || !strings.Contains(out, "verify OK") {
			t.Fatalf("openssl crl -verify %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
	out, _ := ocsptest.Tool(t, "openssl", "crl", "-inform", "DER", "-in", deltaPath, "-noout", "-text")
	for _, want := range []string{"Delta CRL Indicator: critical", "Issuing Distribution Point: critical", url,
		"Key Compromise", "Invalidity Date", "9F8E7D", "X509v3 CRL Number"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl -text of the delta lacks %q:\n%s", want, out)
		}
	}
	// openssl verify -crl_check wants the CRL in PEM.
	crlPEM := filepath.Join(dir, "full.pem")
	if out, err := ocsptest.Tool(t, "openssl", "crl", "-inform", "DER", "-in", fullPath, "-out", crlPEM); err != nil {
		t.Fatalf("converting CRL: %v\n%s", err, out)
	}
	out, err = ocsptest.Tool(t, "openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlPEM, ocsptest.WritePEM(t, dir, "good.pem", good))
	if err != nil || !strings.Contains(out, "OK") {
		t.Errorf("openssl verify of the good leaf: %v\n%s", err, out)
	}
	out, err = ocsptest.Tool(t, "openssl", "verify", "-crl_check", "-CAfile", caPEM, "-CRLfile", crlPEM, ocsptest.WritePEM(t, dir, "revoked.pem", revoked))
	if err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify accepted the revoked leaf: %v\n%s", err, out)
	}
}
