package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
)

// keyTypes are the key types tests run over.
var keyTypes = []string{"p256", "p384", "rsa2048", "rsa3072", "ed25519"}

// caKeyTypes are the key types CAs may have.
var caKeyTypes = []string{"p256", "p384", "rsa2048", "rsa3072"}

// testKeys caches keys for the package's tests: RSA key generation is slow.
var (
	testKeysMu sync.Mutex
	testKeys   = map[string]crypto.Signer{}
)

// testKey returns the shared test key number 1 of typ.
func testKey(t testing.TB, typ string) crypto.Signer { return cachedKey(t, typ, "1") }

// freshKeyOf returns the shared test key number 2 of typ (a different key).
func freshKeyOf(t testing.TB, typ string) crypto.Signer { return cachedKey(t, typ, "2") }

// freshKey makes a new, unshared key.
func freshKey(t testing.TB, typ string) crypto.Signer {
	t.Helper()
	k, err := genKey(typ)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func cachedKey(t testing.TB, typ, n string) crypto.Signer {
	t.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[typ+"/"+n]; ok {
		return k
	}
	k, err := genKey(typ)
	if err != nil {
		t.Fatal(err)
	}
	testKeys[typ+"/"+n] = k
	return k
}

func genKey(typ string) (crypto.Signer, error) {
	switch typ {
	case "p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa1024":
		return rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	panic("unknown key type " + typ)
}
