package ca

import (
	"crypto"
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
	if typ == "rsa1024" { // too weak for NewKey: tests of refusals use it
		return rsa.GenerateKey(rand.Reader, 1024)
	}
	return NewKey(typ)
}
