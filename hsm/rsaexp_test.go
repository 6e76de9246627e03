package hsm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// TestImportRefusesSmallRSAExponent: an RSA key with public exponent 3 is
// refused at import, as DER and as a key, and nothing is stored.
func TestImportRefusesSmallRSAExponent(t *testing.T) {
	ctx := context.Background()
	f := setup(t, sqliteDB(t))
	k := rsaWithExponent(t, 3)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{"PKCS#8": der, "key": k} {
		_, err := f.alice.ImportKey(ctx, KeySpec{Type: RSA2048, Label: "e3-" + name}, key)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "exponent 3") {
			t.Fatalf("%s: %v; want ErrInvalid naming the exponent", name, err)
		}
	}
	if keys, err := f.alice.ListKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("after refused imports: %d keys, %v", len(keys), err)
	}
}

// rsaWithExponent makes a 2048-bit RSA key with public exponent e (Go's
// GenerateKey always uses 65537).
func rsaWithExponent(t *testing.T, e int) *rsa.PrivateKey {
	t.Helper()
	be := big.NewInt(int64(e))
	one := big.NewInt(1)
	prime := func() *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if new(big.Int).GCD(nil, nil, new(big.Int).Sub(p, one), be).Cmp(one) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: e},
		D: new(big.Int).ModInverse(be, phi), Primes: []*big.Int{p, q}}
	k.Precompute()
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	return k
}
