package acme_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"

	legoacme "github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
)

func apiCertID(leaf *x509.Certificate) (string, error) { return api.MakeARICertID(leaf) }

func asProblem(err error, p **legoacme.ProblemDetails) bool { return errors.As(err, p) }

func mustCore(t testing.TB, e *env, key crypto.Signer, kid string) *api.Core {
	t.Helper()
	c, err := api.New(e.ts.Client(), "strongroom-test", e.url("directory"), kid, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
