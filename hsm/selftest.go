package hsm

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Known-answer self-tests, run at Initialize and at every Unseal. A failure
// sets the module's failure state: every operation then returns
// ErrSelfTestFailed naming the test, until an unseal passes them all.

type kat struct {
	name string
	run  func(corrupt func([]byte) []byte) error
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("hsm: bad self-test vector: " + err.Error()) // constant input; unreachable
	}
	return b
}

// expectEqual compares a computed value with the (possibly corrupted) vector.
func expectEqual(got, want []byte) error {
	if !bytes.Equal(got, want) {
		return errors.New("output differs from the known answer")
	}
	return nil
}

func kats() []kat {
	return []kat{
		{"aes-256-gcm", func(c func([]byte) []byte) error {
			// GCM specification (McGrew & Viega) test case 14: zero key, IV, block.
			g, err := gcmOf(make([]byte, 32))
			if err != nil {
				return err
			}
			want := c(mustHex("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"))
			if err := expectEqual(g.Seal(nil, make([]byte, 12), make([]byte, 16), nil), want); err != nil {
				return err
			}
			p, err := g.Open(nil, make([]byte, 12), want, nil)
			if err != nil || !bytes.Equal(p, make([]byte, 16)) {
				return errors.New("decryption of the known ciphertext failed")
			}
			return nil
		}},
		{"aes-kw", func(c func([]byte) []byte) error {
			// RFC 3394 §4.1: 128-bit data wrapped with a 128-bit KEK.
			b, _ := aes.NewCipher(mustHex("000102030405060708090A0B0C0D0E0F"))
			data := mustHex("00112233445566778899AABBCCDDEEFF")
			want := c(mustHex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"))
			if err := expectEqual(kwWrap(b, data), want); err != nil {
				return err
			}
			if p, err := kwUnwrap(b, want); err != nil || !bytes.Equal(p, data) {
				return errors.New("unwrap of the known answer failed")
			}
			return nil
		}},
		{"aes-kwp", func(c func([]byte) []byte) error {
			// RFC 5649 §6: 7 octets wrapped with a 192-bit KEK.
			b, _ := aes.NewCipher(mustHex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"))
			want := c(mustHex("afbeb0f07dfbf5419200f2ccb50bb24f"))
			if err := expectEqual(kwWrap(b, mustHex("466f7250617369")), want); err != nil {
				return err
			}
			if p, err := kwUnwrap(b, want); err != nil || !bytes.Equal(p, mustHex("466f7250617369")) {
				return errors.New("unwrap of the known answer failed")
			}
			return nil
		}},
		digestKAT("sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
		digestKAT("sha384", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
		digestKAT("sha512", "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
		digestKAT("sha3-256", "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"),
		digestKAT("sha3-384", "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b298d88cea927ac7f539f1edf228376d25"),
		digestKAT("sha3-512", "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"),
		{"hmac-sha256", func(c func([]byte) []byte) error {
			// RFC 4231 test case 1.
			h := hmac.New(sha256.New, bytes.Repeat([]byte{0x0b}, 20))
			h.Write([]byte("Hi There"))
			return expectEqual(h.Sum(nil), c(mustHex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")))
		}},
		{"ed25519", func(c func([]byte) []byte) error {
			// RFC 8032 §7.1 test 1 (empty message).
			k := ed25519.NewKeyFromSeed(mustHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
			if !bytes.Equal(k.Public().(ed25519.PublicKey), mustHex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")) {
				return errors.New("public key differs from the known answer")
			}
			return expectEqual(ed25519.Sign(k, nil), c(mustHex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")))
		}},
		{"rsa-pkcs1v15", func(c func([]byte) []byte) error {
			k, err := katRSA()
			if err != nil {
				return err
			}
			d := sha256.Sum256([]byte(katMessage))
			sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
			if err != nil {
				return err
			}
			return expectEqual(sig, c(mustHex(katRSAPKCS1)))
		}},
		{"rsa-pss", func(c func([]byte) []byte) error {
			k, err := katRSA()
			if err != nil {
				return err
			}
			d := sha256.Sum256([]byte(katMessage))
			opts := &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}
			if err := rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d[:], c(mustHex(katRSAPSS)), opts); err != nil {
				return fmt.Errorf("known signature does not verify: %w", err)
			}
			sig, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, d[:], opts)
			if err != nil {
				return err
			}
			return rsa.VerifyPSS(&k.PublicKey, crypto.SHA256, d[:], sig, opts)
		}},
		{"rsa-oaep-sha256", func(c func([]byte) []byte) error {
			k, err := katRSA()
			if err != nil {
				return err
			}
			p, err := rsa.DecryptOAEP(sha256.New(), nil, k, c(mustHex(katOAEP)), nil)
			if err != nil {
				return fmt.Errorf("known ciphertext does not decrypt: %w", err)
			}
			return expectEqual(p, []byte(katMessage))
		}},
		{"ecdsa-p256", func(c func([]byte) []byte) error {
			blk, _ := pem.Decode([]byte(katECKey))
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return err
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok || ek.Curve != elliptic.P256() {
				return errors.New("fixed key is not P-256")
			}
			d := sha256.Sum256([]byte(katMessage))
			if !ecdsa.VerifyASN1(&ek.PublicKey, d[:], c(mustHex(katECDSA))) {
				return errors.New("known signature does not verify")
			}
			sig, err := ecdsa.SignASN1(rand.Reader, ek, d[:])
			if err != nil {
				return err
			}
			if !ecdsa.VerifyASN1(&ek.PublicKey, d[:], sig) {
				return errors.New("fresh signature does not verify")
			}
			return nil
		}},
		{"drbg", func(c func([]byte) []byte) error {
			// Continuous RNG test: two outputs must differ. The test hook
			// simulates a stuck generator by repeating the first output.
			a, b := make([]byte, 32), make([]byte, 32)
			rand.Read(a)
			rand.Read(b)
			if c([]byte{0})[0] != 0 {
				copy(b, a)
			}
			if bytes.Equal(a, b) {
				return errors.New("two random outputs are equal")
			}
			return nil
		}},
	}
}

func digestKAT(alg, want string) kat {
	return kat{alg, func(c func([]byte) []byte) error {
		got, err := Digest(alg, []byte("abc"))
		if err != nil {
			return err
		}
		return expectEqual(got, c(mustHex(want)))
	}}
}

func katRSA() (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode([]byte(katRSAKey))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("fixed key is not RSA")
	}
	return rk, nil
}

// runSelfTests runs every KAT; on failure it sets the failure state and
// returns ErrSelfTestFailed naming the test. Success clears a previous
// failure. The caller holds m.mu.
func (m *Module) runSelfTests() error {
	for _, t := range kats() {
		corrupt := func(b []byte) []byte { return b }
		if t.name == m.katCorrupt {
			corrupt = func(b []byte) []byte {
				b = bytes.Clone(b)
				b[len(b)-1] ^= 0x01
				return b
			}
		}
		if err := t.run(corrupt); err != nil {
			why := t.name + ": " + err.Error()
			m.failure.Store(&why)
			m.selfTst.Store(&why)
			return errf(ErrSelfTestFailed, "self-test %s", why)
		}
	}
	passed := "passed"
	m.selfTst.Store(&passed)
	m.failure.Store(nil)
	return nil
}

// pairwise checks a freshly generated or imported key pair: sign and verify
// a random digest (and, for RSA, encrypt and decrypt).
func pairwise(t KeyType, h keyHandle) error {
	if !t.asymmetric() {
		return nil
	}
	msg := make([]byte, 32)
	rand.Read(msg)
	var opts crypto.SignerOpts = crypto.SHA256
	if t == Ed25519 {
		opts = crypto.Hash(0)
	}
	sig, err := h.sign(msg, opts)
	if err == nil {
		err = verifyWith(h.public(), msg, sig, opts)
	}
	if err == nil && t.isRSA() {
		var ct, pt []byte
		ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, h.public().(*rsa.PublicKey), msg, nil)
		if err == nil {
			pt, err = h.decryptOAEP(ct, nil)
		}
		if err == nil && !bytes.Equal(pt, msg) {
			err = errors.New("decryption differs")
		}
	}
	if err != nil {
		return errf(ErrSelfTestFailed, "pairwise consistency test of new %s key: %v", t, err)
	}
	return nil
}
