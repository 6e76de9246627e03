package ocsp

import (
	"crypto"
	"testing"
	"time"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ocsp/ocsptest"
)

// responderSerial names the certificate a signed answer carries, says
// "none" for one signed by the issuer, and refuses what it cannot read.
func TestResponderSerial(t *testing.T) {
	ca := ocsptest.NewCA(t, "Signer CA", nil)
	for _, serial := range []core.Serial{"ab2f3c", "8f00000000000001", "1"} {
		embedded := ca.Leaf(t, serial, "", "") // any certificate will do: only its place is read
		withCert, err := newSigningKey(ca.Key, embedded)
		if err != nil {
			t.Fatal(err)
		}
		issuerOnly, err := newSigningKey(ca.Key, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := []single{{id: CertID{Hash: crypto.SHA1, IssuerNameHash: make([]byte, 20), IssuerKeyHash: make([]byte, 20), Serial: "1001"}}}
		now := time.Now()
		for _, tc := range []struct {
			k      *signingKey
			nonce  []byte
			cut    int
			want   string
			wantOK bool
		}{
			{k: withCert, want: string(serial), wantOK: true},
			{k: withCert, nonce: []byte("0123456789abcdef"), want: string(serial), wantOK: true},
			{k: issuerOnly, want: "", wantOK: true},
			{k: withCert, cut: 1},
			{k: issuerOnly, cut: 1},
		} {
			resp, err := tc.k.sign(s, tc.nonce, now, now, now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var buf [40]byte
			got, ok := responderSerial(resp[:len(resp)-tc.cut], &buf)
			if string(got) != tc.want || ok != tc.wantOK || (tc.want == "") != (got == nil) {
				t.Fatalf("responderSerial = %q %v; want %q %v", got, ok, tc.want, tc.wantOK)
			}
		}
	}
	var buf [40]byte
	if _, ok := responderSerial(malformedResponse, &buf); ok {
		t.Fatal("an error response was read as signed")
	}
}

// BenchmarkSignerCheck is what a cached GET pays to check its answer's
// signer (BenchmarkCachedGETHandler includes it): the walk to the
// embedded certificate's serial and one map read.
func BenchmarkSignerCheck(b *testing.B) {
	ca := ocsptest.NewCA(b, "Signer CA", nil)
	embedded := ca.Leaf(b, "8f00000000000001", "", "")
	k, err := newSigningKey(ca.Key, embedded)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	s := []single{{id: CertID{Hash: crypto.SHA1, IssuerNameHash: make([]byte, 20), IssuerKeyHash: make([]byte, 20), Serial: "1001"}}}
	resp, err := k.sign(s, nil, now, now, now.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	var kr keyring
	kr.knowSigner("8f00000000000001", now.Add(time.Hour), now)
	b.ReportAllocs()
	for b.Loop() {
		var buf [40]byte
		serial, ok := responderSerial(resp, &buf)
		if s, known := kr.signer(serial); !ok || !known || s.state != signerGood {
			b.Fatal("signer not found")
		}
	}
}
