//go:build !cgo || nopkcs11

package pkcs11

import (
	"context"
	"crypto"
)

// Available reports whether this binary can reach PKCS#11 modules.
const Available = false

// Token is unavailable in a build without cgo.
type Token struct{}

// Open reports that this build cannot use PKCS#11.
func Open(context.Context, Options) (*Token, error) { return nil, ErrUnavailable }

func (*Token) Close() error                                    { return nil }
func (*Token) Generate(string, KeyType) (crypto.Signer, error) { return nil, ErrUnavailable }
func (*Token) Signer(string) (crypto.Signer, error)            { return nil, ErrUnavailable }
func (*Token) Has(string) (bool, error)                        { return false, ErrUnavailable }

// Wrapper is unavailable in a build without cgo.
type Wrapper struct{}

func (*Token) Wrapper(string, bool) (*Wrapper, error)       { return nil, ErrUnavailable }
func (*Wrapper) Seal(plaintext, aad []byte) ([]byte, error) { return nil, ErrUnavailable }
func (*Wrapper) Open(sealed, aad []byte) ([]byte, error)    { return nil, ErrUnavailable }
