// Package hsm is Strongroom's embedded hardware-security-module, in
// software: users and roles with PIN login and lockout (each user's record
// authenticated under the KEK, so a database writer cannot set a PIN or a
// role), sessions, key
// objects sealed at rest under a key-encryption key (KEK), the unseal
// methods that recover the KEK (key file, passphrase, Shamir M-of-N),
// known-answer self-tests, the key operations (sign, verify, encrypt,
// decrypt, wrap, unwrap, digest, HMAC, random, data keys), a hash-chained
// audit log, and backup/restore (one authenticated file holding every object
// still sealed, the users, the meta and the audit chain, with the KEK wrapped
// for the recovery holders; a scheduled backup with retention and a copy).
//
// Roles follow CloudHSM's split: a crypto officer manages users and may see
// and destroy any key's metadata but uses no key; a crypto user generates,
// imports and owns keys, uses its own keys and keys shared with it, and only
// the owner exports, rotates, shares or destroys; an auditor reads the audit
// log and nothing else. A session never learns that another user's key
// exists: looking it up by id gives ErrNotFound.
//
// Private keys never leave the package: the only outputs are signatures,
// ciphertexts, MACs and wrapped blobs (extractable keys only). The
// crypto.Signer handed to the rest of the program is a session-bound proxy,
// never the key itself.
//
// Key operations go through the internal keyHandle interface, so a later
// hsm/pkcs11 package can serve keys that live in a real HSM behind the same
// Session calls (TODO(#2): not built yet).
//
// The package must not touch SQL (it talks to a Store), must not log secrets,
// and must not make a signature wait for a database write: key use is
// counted with atomics and written as periodic audit summaries.
//
// Zeroing is best effort: Seal clears the KEK, raw secrets and private-key
// integers the package holds, but Go's crypto keeps precomputed forms (AES
// key schedules, FIPS key caches) that cannot be reached; they become garbage
// once the references are dropped.
package hsm
