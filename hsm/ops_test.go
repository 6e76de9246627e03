package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestKeyOperations(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	types := []KeyType{RSA2048, P256, P384, P521, Ed25519, AES128, AES256, HMACSHA256}
	if !testing.Short() {
		types = append(types, RSA3072)
	}
	msg := []byte("message to protect")
	d256 := sha256.Sum256(msg)
	for _, typ := range types {
		t.Run(string(typ), func(t *testing.T) {
			spec := KeySpec{Type: typ, Label: "ops-" + string(typ)}
			if typ.isRSA() {
				spec.Usage = UsageSign | UsageVerify | UsageEncrypt | UsageDecrypt
			}
			k, err := f.alice.GenerateKey(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if k.Version != 1 || k.Owner != "alice" || k.Type != typ {
				t.Fatalf("info %+v", k)
			}
			if got, err := f.alice.FindKey(ctx, spec.Label); err != nil || got.ID != k.ID {
				t.Fatalf("FindKey: %v", err)
			}
			var sigs []struct {
				digest []byte
				opts   crypto.SignerOpts
				sig    []byte
			}
			signOne := func(digest []byte, opts crypto.SignerOpts) {
				t.Helper()
				sig, err := f.alice.Sign(ctx, k.ID, digest, opts)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if err := f.alice.Verify(ctx, k.ID, 0, digest, sig, opts); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				bad := bytes.Clone(sig)
				bad[len(bad)/2] ^= 1
				if err := f.alice.Verify(ctx, k.ID, 0, digest, bad, opts); !errors.Is(err, ErrVerification) {
					t.Fatalf("Verify of a bad signature: %v", err)
				}
				sigs = append(sigs, struct {
					digest []byte
					opts   crypto.SignerOpts
					sig    []byte
				}{digest, opts, sig})
			}
			var cts [][]byte
			switch {
			case typ == Ed25519:
				signOne(msg, crypto.Hash(0))
			case typ.isEC():
				signOne(d256[:], crypto.SHA256)
				d := sha512.Sum384(msg)
				signOne(d[:], crypto.SHA384)
			case typ.isRSA():
				signOne(d256[:], crypto.SHA256)
				signOne(d256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
				ct, err := f.alice.Encrypt(ctx, k.ID, msg, []byte("label"))
				if err != nil {
					t.Fatal(err)
				}
				cts = append(cts, ct)
			case typ.isAES():
				ct, err := f.alice.Encrypt(ctx, k.ID, msg, []byte("aad"))
				if err != nil {
					t.Fatal(err)
				}
				cts = append(cts, ct)
				if _, err := f.alice.Decrypt(ctx, k.ID, ct, []byte("other aad")); !errors.Is(err, ErrVerification) {
					t.Fatalf("Decrypt with wrong aad: %v", err)
				}
				w, err := f.alice.Wrap(ctx, k.ID, bytes.Repeat([]byte{9}, 24))
				if err != nil {
					t.Fatal(err)
				}
				if p, err := f.alice.Unwrap(ctx, k.ID, w); err != nil || !bytes.Equal(p, bytes.Repeat([]byte{9}, 24)) {
					t.Fatalf("Unwrap: %v", err)
				}
				pk, wk, err := f.alice.GenerateDataKey(ctx, k.ID, 256)
				if err != nil {
					t.Fatal(err)
				}
				if p, err := f.alice.DecryptDataKey(ctx, k.ID, wk); err != nil || !bytes.Equal(p, pk) {
					t.Fatalf("DecryptDataKey: %v", err)
				}
			case typ == HMACSHA256:
				mac, err := f.alice.HMAC(ctx, k.ID, msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.alice.VerifyHMAC(ctx, k.ID, msg, mac); err != nil {
					t.Fatal(err)
				}
				if err := f.alice.VerifyHMAC(ctx, k.ID, []byte("other"), mac); !errors.Is(err, ErrVerification) {
					t.Fatalf("VerifyHMAC of other data: %v", err)
				}
				if _, err := f.alice.Sign(ctx, k.ID, d256[:], crypto.SHA256); !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Sign with an HMAC key: %v", err)
				}
			}
			// Rotate: new version signs; old signatures and ciphertexts still work.
			r, err := f.alice.RotateKey(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Version != 2 {
				t.Fatalf("rotated version %d", r.Version)
			}
			for _, s := range sigs {
				if err := f.alice.Verify(ctx, k.ID, 1, s.digest, s.sig, s.opts); err != nil {
					t.Errorf("old signature with version 1: %v", err)
				}
				if err := f.alice.Verify(ctx, k.ID, 0, s.digest, s.sig, s.opts); !errors.Is(err, ErrVerification) {
					t.Errorf("old signature with the new version: %v", err)
				}
			}
			for _, ct := range cts {
				aad := []byte("aad")
				if typ.isRSA() {
					aad = []byte("label")
				}
				if p, err := f.alice.Decrypt(ctx, k.ID, ct, aad); err != nil || !bytes.Equal(p, msg) {
					t.Errorf("old ciphertext after rotation: %v", err)
				}
			}
			// A fresh module (nothing cached) sees both versions.
			m2 := f.reopen(t)
			a2, _ := m2.Login(ctx, "alice", alicePIN)
			if ki, err := a2.GetKey(ctx, k.ID); err != nil || ki.Version != 2 {
				t.Fatalf("after reopen: %+v %v", ki, err)
			}
			m2.Close(ctx)
			if err := f.alice.DestroyKey(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := f.alice.GetKey(ctx, k.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after destroy: %v", err)
			}
		})
	}
}

func TestSignerIssuesCertificate(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	for _, typ := range []KeyType{P256, Ed25519, RSA2048} {
		k, err := f.alice.GenerateKey(ctx, KeySpec{Type: typ, Label: "ca-" + string(typ), Usage: UsageSign | UsageVerify})
		if err != nil {
			t.Fatal(err)
		}
		sg, err := f.alice.Signer(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, sg.Public(), sg)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		c, _ := x509.ParseCertificate(der)
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if typ.isRSA() {
			dec := sg.(crypto.Decrypter)
			ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, sg.Public().(*rsa.PublicKey), []byte("x"), nil)
			if _, err := dec.Decrypt(nil, ct, nil); !errors.Is(err, ErrForbidden) {
				t.Fatalf("Decrypt with a sign-only key: %v", err)
			}
		}
		if err := f.alice.DestroyKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := sg.Sign(nil, make([]byte, 32), crypto.SHA256); !errors.Is(err, ErrNotFound) {
			t.Fatalf("signer of destroyed key: %v", err)
		}
	}
}

func TestBadInputsGiveClearErrors(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k, _ := f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "k"})
	aes, _ := f.alice.GenerateKey(ctx, KeySpec{Type: AES256, Label: "aes"})
	for name, err := range map[string]error{
		"unknown type":     second(f.alice.GenerateKey(ctx, KeySpec{Type: "dsa"})),
		"bad usage":        second(f.alice.GenerateKey(ctx, KeySpec{Type: P256, Usage: UsageEncrypt})),
		"dup label":        second(f.alice.GenerateKey(ctx, KeySpec{Type: P256, Label: "k"})),
		"short digest":     second(f.alice.Sign(ctx, k.ID, []byte{1, 2}, crypto.SHA256)),
		"nil opts":         second(f.alice.Sign(ctx, k.ID, make([]byte, 32), nil)),
		"short ciphertext": second(f.alice.Decrypt(ctx, aes.ID, []byte{1}, nil)),
		"bad version":      second(f.alice.Decrypt(ctx, aes.ID, []byte{1, 0, 0, 0, 9, 1, 2, 3}, nil)),
		"bad wrap":         second(f.alice.Unwrap(ctx, aes.ID, []byte{1, 2, 3})),
		"random size":      second(f.alice.Random(ctx, 0)),
		"digest":           second(Digest("md5", nil)),
		"import mismatch":  second(f.alice.ImportKey(ctx, KeySpec{Type: P384}, []byte("not der"))),
		"share to officer": f.alice.ShareKey(ctx, k.ID, "co"),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if b, err := f.alice.Random(ctx, 32); err != nil || len(b) != 32 {
		t.Errorf("Random: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
