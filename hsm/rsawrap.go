package hsm

import (
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
)

// RSA-AES key wrap: PKCS #11's CKM_RSA_AES_KEY_WRAP, which AWS KMS
// (RSA_AES_KEY_WRAP_SHA_256), Google Cloud KMS (RSA_OAEP_3072_SHA256_AES_256)
// and Azure Key Vault use to bring keys in. A fresh AES-256 key is
// encrypted to the RSA key with OAEP (SHA-256, MGF1-SHA-256, empty label);
// the material follows, wrapped under that AES key with AES-KWP (RFC 5649).
// A client wraps with the public key alone, e.g. with openssl:
//
//	openssl rand -out aes.key 32
//	openssl pkeyutl -encrypt -pubin -inkey wrapping.pem -in aes.key -out head.bin \
//	  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
//	openssl enc -id-aes256-wrap-pad -iv A65959A6 -K $(xxd -p -c 64 aes.key) -in key.p8.der -out tail.bin
//	cat head.bin tail.bin > wrapped.bin

// rsaAESWrap wraps p for the holder of pub's private key.
func rsaAESWrap(pub *rsa.PublicKey, p []byte) ([]byte, error) {
	kek := make([]byte, 32)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	head, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, kek, nil)
	if err != nil {
		return nil, errf(ErrInvalid, "RSA-AES key wrap: %v", err)
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	return append(head, kwpWrap(b, p)...), nil
}

// rsaAESUnwrap opens a blob made by rsaAESWrap (or any CKM_RSA_AES_KEY_WRAP
// producer). Every failure is the same ErrVerification.
func rsaAESUnwrap(priv *rsa.PrivateKey, c []byte) ([]byte, error) {
	n := priv.Size()
	bad := errf(ErrVerification, "unwrapping: the blob is not RSA-OAEP-SHA256 + AES-KWP for this key")
	if len(c) < n+16 {
		return nil, bad
	}
	kek, err := rsa.DecryptOAEP(sha256.New(), nil, priv, c[:n], nil)
	if err != nil || len(kek) != 32 {
		return nil, bad
	}
	defer clear(kek)
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, bad
	}
	p, err := kwUnwrap(b, c[n:])
	if err != nil {
		return nil, bad
	}
	return p, nil
}
