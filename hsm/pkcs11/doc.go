// Package pkcs11 keeps the CA's signing keys — root and intermediates — on a
// real HSM reached through PKCS#11 (Thales Luna, Entrust nShield, AWS
// CloudHSM, YubiHSM 2, SoftHSMv2…) instead of in the embedded module.
//
// Keys are generated on the token as non-extractable, sensitive key pairs
// (the private half never exists outside the HSM), found again by label,
// and used through crypto.Signer, the one seam between ca and a key store:
// every certificate, CRL and OCSP signature by such an issuer is made by the
// token inside its own PKCS#11 session. The embedded module still holds
// everything else (the OCSP responder key, EAB keys, application keys).
//
// It is built on crypto11 (over miekg/pkcs11), the library under
// go.step.sm/crypto/kms/pkcs11, used directly because the kms wrapper
// cannot set a key's attributes: a CA key here may only sign (tokens such
// as SoftHSM otherwise let a new private key decrypt, unwrap and derive).
// It needs cgo; a binary built without cgo reports that PKCS#11 is not
// available. The user PIN never appears in an error or log line.
package pkcs11
