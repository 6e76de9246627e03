package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core/logfmt"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
	"github.com/strongroom-pki/strongroom/storage"
)

// node is one running Strongroom process: its configuration, database and
// HSM module. Everything else is built from it by serve.
type node struct {
	dir string
	cfg *config.Config
	log *slog.Logger
	db  *storage.DB
	hsm *hsm.Module
	// logw batches log writes (logwriter.go); Close flushes it.
	logw *logWriter
	// token is the PKCS#11 token holding the issuers' keys when
	// ca.key_store is pkcs11, opened by issuers.
	token *pkcs11.Token
	// closing is run by Close: tokens a command opened besides token.
	closing []func()
	// limiter is the in-memory rate limiter when there is no Redis. It
	// lives as long as the process, not the app: a seal and unseal
	// rebuilds the app, and must not reset everyone's hourly counts.
	limiterOnce sync.Once
	limiter     *storage.MemoryLimiter
}

// memoryLimiter is the process's in-memory rate limiter.
func (n *node) memoryLimiter() *storage.MemoryLimiter {
	n.limiterOnce.Do(func() { n.limiter = storage.NewMemoryLimiter(nil) })
	return n.limiter
}

// openNode loads the configuration and opens the database and HSM module,
// still sealed. Only the server (serve) binds the audit log's
// authentication into the keystore of a previous release at its first
// unseal (hsm.Options.DeferAuditBinding): the commands an operator runs
// before it, a status or a backup, leave that release able to open it.
func openNode(ctx context.Context, dir string, logOut io.Writer, serve bool) (*node, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, err
	}
	logw := newLogWriter(logOut, 100*time.Millisecond)
	log := newLogger(cfg.Log, logw)
	db, err := openDB(ctx, cfg, dir)
	if err != nil {
		logw.Close()
		return nil, err
	}
	mod, err := hsm.New(ctx, hsm.Options{Store: db, Logger: log, UsageSummaryInterval: cfg.HSM.UsageSummaryInterval.D(),
		DeferAuditBinding: !serve})
	if err != nil {
		db.Close()
		logw.Close()
		return nil, fmt.Errorf("opening HSM: %w", err)
	}
	return &node{dir: dir, cfg: cfg, log: log, db: db, hsm: mod, logw: logw}, nil
}

func (n *node) Close(ctx context.Context) {
	for _, c := range n.closing {
		c()
	}
	if n.token != nil {
		n.token.Close()
	}
	n.hsm.Close(ctx)
	n.db.Close()
	n.logw.Close()
}

// unsealFromEnvironment unseals with what needs no operator: the key file,
// or a passphrase in STRONGROOM_HSM_PASSPHRASE. Shamir always needs people.
func (n *node) unsealFromEnvironment(ctx context.Context) error {
	in, err := n.environmentMaterial(ctx)
	if err != nil {
		return err
	}
	return n.hsm.Unseal(ctx, in)
}

// environmentMaterial is the unseal material the node has without an
// operator: its key file, its token, or the passphrase in the environment;
// errNeedsOperator when shares or a passphrase must be typed.
func (n *node) environmentMaterial(ctx context.Context) (hsm.UnsealInput, error) {
	switch n.cfg.HSM.Unseal {
	case "keyfile":
		return hsm.UnsealInput{KeyFile: config.Path(n.dir, n.cfg.HSM.KeyFile)}, nil
	case "passphrase":
		if p := os.Getenv(config.EnvPassphrase); p != "" {
			return hsm.UnsealInput{Passphrase: []byte(p)}, nil
		}
	case "pkcs11":
		return n.tokenUnseal(ctx)
	}
	return hsm.UnsealInput{}, errNeedsOperator
}

var errNeedsOperator = errors.New("the HSM needs an operator to unseal it (ca hsm unseal)")

// caSession logs in as the CA's crypto user.
func (n *node) caSession(ctx context.Context) (*hsm.Session, error) {
	pin, err := n.cfg.HSMPIN(n.dir)
	if err != nil {
		return nil, err
	}
	s, err := n.hsm.LoginStored(ctx, n.cfg.HSM.User, pin)
	if err != nil {
		return nil, fmt.Errorf("logging in to the HSM as %s: %w%s", n.cfg.HSM.User, err, staleStoredPIN(err, config.Path(n.dir, n.cfg.HSM.PINFile)))
	}
	return s, nil
}

// staleStoredPIN is what to add to a failed login with a stored PIN: the
// likeliest cause on a cluster, and that every failed start counts.
func staleStoredPIN(err error, file string) string {
	if !errors.Is(err, hsm.ErrBadPIN) {
		return ""
	}
	if _, serr := os.Stat(file + ".new"); serr == nil {
		return fmt.Sprintf(" (%s.new holds the PIN of a `ca hsm users pin` that stopped before it replaced %s: if the change went through, move it over %s)", file, file, file)
	}
	return " (if the PIN was changed on another node, copy its PIN file or environment here: every failed start counts, and the user locks at the fifth; the last try is left to a person)"
}

// errNotCryptoUser refuses a key service user of another role than user.
var errNotCryptoUser = errors.New("not a crypto user (role user)")

// appsSession logs in as the key service's crypto user. A user of another
// role is refused: only crypto users use keys, so its session would serve
// nothing but 403s.
func (n *node) appsSession(ctx context.Context) (*hsm.Session, error) {
	pin, err := n.cfg.AppsPIN(n.dir)
	if err != nil {
		return nil, err
	}
	s, err := n.hsm.LoginStored(ctx, n.cfg.HSM.AppsUser, pin)
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, staleStoredPIN(err, config.Path(n.dir, n.cfg.HSM.AppsPINFile)))
	}
	if s.Role() != hsm.RoleUser {
		s.Close()
		return nil, fmt.Errorf("HSM user %s is %s: %w", n.cfg.HSM.AppsUser, s.Role(), errNotCryptoUser)
	}
	return s, nil
}

// ceremonyIssuers opens the CA user's session (the caller closes it) and
// loads the root and intermediates with plain signers, for a key ceremony.
func (n *node) ceremonyIssuers(ctx context.Context) (*hsm.Session, *ca.Issuer, []*ca.Issuer, error) {
	sess, err := n.caSession(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	root, inters, err := n.issuers(ctx, sess, nil)
	if err != nil {
		sess.Close()
		return nil, nil, nil, err
	}
	return sess, root, inters, nil
}

// issuers loads the root and intermediates: certificates from their files,
// signers by label from the embedded HSM or, with ca.key_store pkcs11, from
// the PKCS#11 token. wrap, if not nil, wraps each signer (for metrics).
func (n *node) issuers(ctx context.Context, sess *hsm.Session, wrap func(label string, s crypto.Signer) crypto.Signer) (root *ca.Issuer, inters []*ca.Issuer, err error) {
	load := func(is config.Issuer, parent *ca.Issuer) (*ca.Issuer, error) {
		signer, err := n.issuerSigner(ctx, sess, is)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", is.ID, err)
		}
		path := config.Path(n.dir, is.Cert)
		// Under an external root the file may hold the CA certificates
		// between the intermediate and the root after its own.
		certs, err := readCerts(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && parent != nil && parent.External():
			return nil, notInstalled(n.dir, is)
		case errors.Is(err, fs.ErrNotExist) && parent != nil:
			var cert *x509.Certificate
			cert, err = n.issuerFromDB(ctx, is, path, signer.Public())
			certs = []*x509.Certificate{cert}
		}
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", is.ID, err)
		}
		cert := certs[0]
		if !publicKeysEqual(signer.Public(), cert.PublicKey) {
			if n.cfg.CA.KeyStore == "pkcs11" {
				return nil, fmt.Errorf("issuer %s: the token's key %q (hsm.pkcs11.label_prefix %q, then key_label) is not the key of %s",
					is.ID, n.cfg.HSM.PKCS11.LabelPrefix+is.KeyLabel, n.cfg.HSM.PKCS11.LabelPrefix, is.Cert)
			}
			return nil, fmt.Errorf("issuer %s: key %q is not the key of %s", is.ID, is.KeyLabel, is.Cert)
		}
		if wrap != nil {
			signer = wrap(is.KeyLabel, signer)
		}
		chain := certs
		if parent != nil {
			chain = append(chain, parent.Chain()...)
		}
		return ca.NewIssuer(is.ID, signer, chain)
	}
	if n.cfg.CA.Root.External {
		root, err = loadAnchor(n.dir, n.cfg.CA.Root)
	} else {
		root, err = load(n.cfg.CA.Root, nil)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, in := range n.cfg.CA.Intermediates {
		is, err := load(in, root)
		if err != nil {
			return nil, nil, err
		}
		inters = append(inters, is)
	}
	return root, inters, nil
}

// issuerSigner is the signer of issuer is's key: by label in the embedded
// HSM or, with ca.key_store pkcs11, on the PKCS#11 token.
func (n *node) issuerSigner(ctx context.Context, sess *hsm.Session, is config.Issuer) (crypto.Signer, error) {
	if n.cfg.CA.KeyStore == "pkcs11" {
		tok, err := n.pkcs11Token(ctx)
		if err != nil {
			return nil, err
		}
		return tok.Signer(is.KeyLabel)
	}
	key, err := sess.FindKey(ctx, is.KeyLabel)
	if err != nil {
		return nil, fmt.Errorf("finding key %q in the HSM: %w", is.KeyLabel, err)
	}
	return sess.Signer(ctx, key.ID)
}

func newLogger(c config.Log, out io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(logfmt.NewJSON(out, opts))
	}
	return slog.New(logfmt.NewText(out, opts))
}

// pkcs11Token is the node's session with the hsm.pkcs11 token, opened on
// first use and kept until Close.
func (n *node) pkcs11Token(ctx context.Context) (*pkcs11.Token, error) {
	if n.token == nil {
		tok, err := openToken(ctx, n.cfg, n.dir)
		if err != nil {
			return nil, err
		}
		n.token = tok
	}
	return n.token, nil
}

// tokenUnseal is the unseal material of hsm.unseal pkcs11: the token's
// KEK-sealing key.
func (n *node) tokenUnseal(ctx context.Context) (hsm.UnsealInput, error) {
	tok, err := n.pkcs11Token(ctx)
	if err != nil {
		return hsm.UnsealInput{}, fmt.Errorf("unsealing with the PKCS#11 token: %w", err)
	}
	w, err := tok.Wrapper(kekWrapperLabel, false)
	if err != nil {
		return hsm.UnsealInput{}, fmt.Errorf("unsealing with the PKCS#11 token: %w", err)
	}
	return hsm.UnsealInput{Wrapper: w}, nil
}

// openToken logs in to the PKCS#11 token named by hsm.pkcs11.
func openToken(ctx context.Context, cfg *config.Config, dir string) (*pkcs11.Token, error) {
	pin, err := cfg.PKCS11PIN(dir)
	if err != nil {
		return nil, err
	}
	return pkcs11.Open(ctx, pkcs11.Options{Module: cfg.HSM.PKCS11.Module, Token: cfg.HSM.PKCS11.Token, PIN: pin, LabelPrefix: cfg.HSM.PKCS11.LabelPrefix})
}

// issuerFromDB finds an intermediate's certificate that a ceremony on
// another node recorded (`ca issuer add` writes the PEM only where it
// ran), by the key the HSM holds for it, and writes the missing file.
func (n *node) issuerFromDB(ctx context.Context, is config.Issuer, path string, pub crypto.PublicKey) (*x509.Certificate, error) {
	recs, err := n.db.CeremonyCertificates(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		c, err := x509.ParseCertificate(r.DER)
		if err != nil || !publicKeysEqual(c.PublicKey, pub) {
			continue
		}
		if err := writeCert(path, c); err != nil {
			return nil, err
		}
		n.log.Info("issuer certificate written from the database", "issuer", is.ID, "file", path, "serial", string(r.Serial))
		return c, nil
	}
	return nil, fmt.Errorf("%s is missing and no certificate recorded in the database has key %q", path, is.KeyLabel)
}
