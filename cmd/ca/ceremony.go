package main

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/storage"
)

// ceremony is what `ca init` (and `ca serve` on a fresh directory) needs to
// create a CA.
type ceremony struct {
	Dir        string
	KeyType    hsm.KeyType // p256 (default), p384, rsa2048, rsa3072, rsa4096
	Unseal     string      // keyfile, passphrase, shamir
	Passphrase []byte
	Threshold  int
	Shares     int
	OfficerPIN string // empty: a random PIN written to DIR/officer.pin
	Hostname   string
	// ListenHTTPS and ListenHTTP override the default listen addresses.
	ListenHTTPS, ListenHTTP string
	// Database and RedisAddr choose shared state for several nodes: driver
	// "postgres" (DSN from STRONGROOM_DATABASE_DSN or DatabaseDSN) and a
	// Redis address. Zero: SQLite in the data directory, in-memory state.
	Database, DatabaseDSN, RedisAddr string
	// RedisPrefix begins the cluster's keys and channels in Redis (zero:
	// the default, written out so the file shows where to change it).
	RedisPrefix string
	CommonName  string // prefix of the CA names; default "Strongroom"
	// PKCS11 is a real HSM's token: with CAKeysOnToken the root and
	// intermediate keys are made there instead of in the embedded HSM
	// (ca.key_store pkcs11); with Unseal "pkcs11" an AES key there seals
	// the KEK. PKCS11PIN is its user PIN, never written anywhere.
	PKCS11        config.PKCS11
	PKCS11PIN     string
	CAKeysOnToken bool
	// RootConstraints are the root's name constraints (zero: none).
	RootConstraints ca.NameConstraints
	// ExternalRoot, if set, is the certificate file of an offline root:
	// no root key is made, and each intermediate gets a key and a CSR
	// for that root's owner to sign (see external.go).
	ExternalRoot string
	Out          io.Writer
	// DeliverShares shows Shamir shares before the keystore takes them
	// (hsm.InitOptions.Deliver); nil: they are returned.
	DeliverShares func(shares []string) error
}

// kekWrapperLabel is the AES key on the token that seals the KEK with
// hsm.unseal pkcs11.
const kekWrapperLabel = "strongroom-kek"

// ceremonyResult is what the operator must be told once.
type ceremonyResult struct {
	Shares      []string
	OfficerFile string
}

// runCeremony creates the HSM, its officer and the CA's crypto user, the root
// and intermediate key pairs inside it, their certificates, and the
// configuration file. It refuses a directory that already holds a CA. The
// arguments are checked before anything is written, and a ceremony that
// fails removes every file it created (nothing that was there before), so
// a corrected retry starts afresh.
func runCeremony(ctx context.Context, c ceremony) (res *ceremonyResult, err error) {
	var created undo
	defer func() {
		if err != nil {
			created.run() // ceremonyIn has closed the database by now
		}
	}()
	return ceremonyIn(ctx, c, &created)
}

func ceremonyIn(ctx context.Context, c ceremony, created *undo) (*ceremonyResult, error) {
	if _, err := os.Stat(filepath.Join(c.Dir, config.FileName)); err == nil {
		return nil, fmt.Errorf("%s already holds a CA (%s exists)", c.Dir, config.FileName)
	}
	if c.Unseal == "shamir" {
		if err := hsm.CheckShamir(c.Threshold, c.Shares); err != nil {
			return nil, err
		}
	}
	cfg := config.Default()
	if c.Hostname != "" || c.ListenHTTPS != "" || c.ListenHTTP != "" {
		if c.Hostname != "" {
			cfg.Hostname = c.Hostname
		}
		if c.ListenHTTPS != "" {
			cfg.Listen.HTTPS = c.ListenHTTPS
		}
		if c.ListenHTTP != "" {
			cfg.Listen.HTTP = c.ListenHTTP
		}
		cfg.URLs = config.URLs{}
		cfg.ApplyDefaults()
	}
	if c.Database != "" {
		cfg.Database = config.Database{Driver: c.Database, DSN: c.DatabaseDSN}
		cfg.ApplyDefaults()
	}
	cfg.Redis.Addr = c.RedisAddr
	if c.RedisAddr != "" {
		cfg.Redis.Prefix = cmp.Or(c.RedisPrefix, cfg.Redis.KeyPrefix())
	}
	if c.PKCS11.Module != "" {
		cfg.HSM.PKCS11 = c.PKCS11
	}
	if c.CAKeysOnToken {
		cfg.CA.KeyStore = "pkcs11"
	}
	var anchor *ca.Issuer
	if c.ExternalRoot != "" {
		var err error
		if anchor, err = checkAnchor(cfg.CA.Root.ID, c.ExternalRoot); err != nil {
			return nil, err
		}
		if err := chainKeepsServerCert(anchor, cfg.Hostname); err != nil {
			return nil, err
		}
		cfg.CA.Root.External, cfg.CA.Root.KeyLabel = true, ""
	}
	cfg.HSM.Unseal = c.Unseal
	if c.Unseal != "keyfile" {
		cfg.HSM.KeyFile = ""
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	created.note(c.Dir)
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if c.KeyType == "" {
		c.KeyType = "p256"
	}
	if c.CommonName == "" {
		c.CommonName = "Strongroom"
	}
	// A token that cannot be used, or already holds keys with our labels,
	// stops the ceremony before anything is written.
	var tok *pkcs11.Token
	var wrapper *pkcs11.Wrapper
	if cfg.CA.KeyStore == "pkcs11" || cfg.HSM.Unseal == "pkcs11" {
		var err error
		if tok, err = openFreshToken(ctx, c, cfg); err != nil {
			return nil, err
		}
		defer tok.Close()
		if cfg.HSM.Unseal == "pkcs11" {
			if wrapper, err = tok.Wrapper(kekWrapperLabel, true); err != nil {
				return nil, err
			}
		}
	}
	created.noteDB(cfg, c.Dir)
	db, err := openDB(ctx, cfg, c.Dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	mod, err := hsm.New(ctx, hsm.Options{Store: db})
	if err != nil {
		return nil, fmt.Errorf("opening HSM: %w", err)
	}
	defer mod.Close(ctx)

	res := &ceremonyResult{}
	officerPIN := c.OfficerPIN
	if officerPIN == "" {
		officerPIN = randomSecret()
		res.OfficerFile = filepath.Join(c.Dir, "officer.pin")
		created.note(res.OfficerFile)
		if err := writeSecret(res.OfficerFile, officerPIN); err != nil {
			return nil, err
		}
	}
	init := hsm.InitOptions{
		Method:      hsm.UnsealMethod(c.Unseal),
		Passphrase:  c.Passphrase,
		Threshold:   c.Threshold,
		Shares:      c.Shares,
		OfficerName: "officer",
		OfficerPIN:  officerPIN,
		Deliver:     c.DeliverShares,
	}
	if c.Unseal == "keyfile" {
		init.KeyFile = config.Path(c.Dir, cfg.HSM.KeyFile)
		created.note(init.KeyFile)
	}
	if wrapper != nil {
		init.Wrapper = wrapper
	}
	ir, err := mod.Initialize(ctx, init)
	if err != nil {
		return nil, fmt.Errorf("initialising HSM: %w", err)
	}
	res.Shares = ir.Shares

	officer, err := mod.Login(ctx, "officer", officerPIN)
	if err != nil {
		return nil, fmt.Errorf("logging in as officer: %w", err)
	}
	caPIN := randomSecret()
	if err := officer.CreateUser(ctx, cfg.HSM.User, hsm.RoleUser, caPIN); err != nil {
		return nil, fmt.Errorf("creating the CA's crypto user: %w", err)
	}
	// The key service's own user: applications' keys never share a user
	// with the CA's.
	appsPIN := randomSecret()
	if err := officer.CreateUser(ctx, cfg.HSM.AppsUser, hsm.RoleUser, appsPIN); err != nil {
		return nil, fmt.Errorf("creating the key service's crypto user: %w", err)
	}
	officer.Close()
	created.note(config.Path(c.Dir, cfg.HSM.PINFile), config.Path(c.Dir, cfg.HSM.AppsPINFile))
	if err := writeSecret(config.Path(c.Dir, cfg.HSM.PINFile), caPIN); err != nil {
		return nil, err
	}
	if err := writeSecret(config.Path(c.Dir, cfg.HSM.AppsPINFile), appsPIN); err != nil {
		return nil, err
	}
	sess, err := mod.Login(ctx, cfg.HSM.User, caPIN)
	if err != nil {
		return nil, fmt.Errorf("logging in as %s: %w", cfg.HSM.User, err)
	}
	defer sess.Close()

	newKey := func(label string) (crypto.Signer, error) {
		key, err := sess.GenerateKey(ctx, hsm.KeySpec{Type: c.KeyType, Label: label, Usage: hsm.UsageSign | hsm.UsageVerify})
		if err != nil {
			return nil, err
		}
		return sess.Signer(ctx, key.ID)
	}
	if cfg.CA.KeyStore == "pkcs11" {
		newKey = func(label string) (crypto.Signer, error) { return tok.Generate(label, pkcs11.KeyType(c.KeyType)) }
	}
	if anchor != nil {
		return res, externalRootCeremony(ctx, c, cfg, anchor, newKey, created)
	}
	rootSigner, err := newKey(cfg.CA.Root.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("generating root key: %w", err)
	}
	now := time.Now
	rootCert, err := ca.NewRoot(ctx, rootSigner, ca.RootOptions{CommonName: c.CommonName + " Root CA", Organization: c.CommonName, Now: now,
		NameConstraints: c.RootConstraints})
	if err != nil {
		return nil, fmt.Errorf("making root certificate: %w", err)
	}
	rootIssuer, err := ca.NewIssuer(cfg.CA.Root.ID, rootSigner, []*x509.Certificate{rootCert})
	if err != nil {
		return nil, err
	}
	created.note(config.Path(c.Dir, cfg.CA.Root.Cert))
	if err := writeCert(config.Path(c.Dir, cfg.CA.Root.Cert), rootCert); err != nil {
		return nil, err
	}
	for _, in := range cfg.CA.Intermediates {
		key, err := newKey(in.KeyLabel)
		if err != nil {
			return nil, fmt.Errorf("generating %s key: %w", in.ID, err)
		}
		cert, err := ca.NewIntermediate(ctx, rootIssuer, key.Public(), intermediateOptions(cfg, c.CommonName+" Intermediate CA", now))
		if err != nil {
			return nil, fmt.Errorf("making %s certificate: %w", in.ID, err)
		}
		if err := recordCeremonyCert(ctx, db, cfg.CA.Root.ID, cert); err != nil {
			return nil, err
		}
		created.note(config.Path(c.Dir, in.Cert))
		if err := writeCert(config.Path(c.Dir, in.Cert), cert); err != nil {
			return nil, err
		}
	}
	created.note(filepath.Join(c.Dir, config.FileName))
	if err := cfg.Write(c.Dir); err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	return res, nil
}

// recordCeremonyCert stores an intermediate certificate the root signed, so
// that it has a record like every other certificate: the root's OCSP
// responder answers for it and the root's CRL can revoke it.
func recordCeremonyCert(ctx context.Context, db *storage.DB, issuerID string, cert *x509.Certificate) error {
	return recordSignedCert(ctx, db, issuerID, "subordinate-ca", storage.CeremonyRequester, cert)
}

// recordSignedCert stores a certificate the root signed outside the
// issuance pipeline (the root is not a pipeline issuer) as the pipeline
// would have: reserved, intent, issued.
func recordSignedCert(ctx context.Context, db *storage.DB, issuerID, profile, requester string, cert *x509.Certificate) error {
	now := time.Now().UTC()
	rec := &core.Certificate{Serial: core.SerialFromBig(cert.SerialNumber), IssuerID: issuerID,
		Profile: profile, Requester: requester, Subject: cert.Subject.CommonName,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, TBS: cert.RawTBSCertificate, CreatedAt: now,
		KeyHash: core.KeyHash(cert.RawSubjectPublicKeyInfo)}
	what := "recording the " + profile + " certificate " + string(rec.Serial)
	if err := db.ReserveSerial(ctx, rec); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := db.RecordIntent(ctx, rec, now); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := db.StoreIssued(ctx, rec.Serial, cert.Raw, now); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func intermediateOptions(cfg *config.Config, cn string, now func() time.Time) ca.IntermediateOptions {
	return ca.IntermediateOptions{
		CommonName:   cn,
		Organization: "Strongroom",
		Now:          now,
		CAIssuerURLs: []string{cfg.URLs.HTTP + "/issuers/" + cfg.CA.Root.ID + ".crt"},
		CRLURLs:      []string{cfg.URLs.HTTP + "/crl/" + cfg.CA.Root.ID + ".crl"},
		OCSPURLs:     []string{cfg.URLs.HTTP + "/ocsp"},
		// ExtKeyUsage zero: serverAuth and clientAuth, what the CA/B
		// Forum lints accept on a TLS intermediate.
	}
}

// randomSecret is 24 random bytes in URL-safe base64: PINs the CA itself uses.
func randomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux; if it does, nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// writeSecret writes a secret file with mode 0600, refusing to overwrite one.
func writeSecret(path, secret string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing secret file: %w", err)
	}
	if _, err := io.WriteString(f, secret+"\n"); err != nil {
		f.Close()
		return fmt.Errorf("writing secret file: %w", err)
	}
	return f.Close()
}

func writeCert(path string, cert *x509.Certificate) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

// readCert reads the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New(path + ": no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// openFreshToken logs in to the ceremony's PKCS#11 token and checks that no
// key there carries a label the CA's keys will take.
func openFreshToken(ctx context.Context, c ceremony, cfg *config.Config) (*pkcs11.Token, error) {
	tok, err := pkcs11.Open(ctx, pkcs11.Options{Module: c.PKCS11.Module, Token: c.PKCS11.Token, PIN: c.PKCS11PIN, LabelPrefix: c.PKCS11.LabelPrefix})
	if err != nil {
		return nil, err
	}
	var labels []string
	if cfg.CA.KeyStore == "pkcs11" && !cfg.CA.Root.External {
		labels = append(labels, cfg.CA.Root.KeyLabel)
	}
	if cfg.CA.KeyStore == "pkcs11" {
		for _, in := range cfg.CA.Intermediates {
			labels = append(labels, in.KeyLabel)
		}
	}

	for _, l := range labels {
		if has, err := tok.Has(l); err != nil || has {
			tok.Close()
			if err == nil {
				err = fmt.Errorf("token %q already holds a key labelled %q; use another token, another --pkcs11-label-prefix, or remove it: %w", c.PKCS11.Token, c.PKCS11.LabelPrefix+l, pkcs11.ErrExists)
			}
			return nil, err
		}
	}
	return tok, nil
}
