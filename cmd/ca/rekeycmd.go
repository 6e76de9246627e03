package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
)

// envNewPassphrase carries the new HSM passphrase of `ca hsm rekey` and
// `ca hsm restore --unseal passphrase` (the current one stays in
// STRONGROOM_HSM_PASSPHRASE, which a rekey needs too).
const envNewPassphrase = "STRONGROOM_NEW_HSM_PASSPHRASE"

// newUnseal is the new unseal material a command asks for.
type newUnseal struct {
	method            string
	threshold, shares int
	pkcs11Module      string
	pkcs11Token       string
}

func (u *newUnseal) register(f *pflag.FlagSet, usage string) {
	f.StringVar(&u.method, "unseal", "", usage)
	f.IntVar(&u.threshold, "threshold", 3, "shamir: shares needed to unseal")
	f.IntVar(&u.shares, "shares", 5, "shamir: shares to create")
	f.StringVar(&u.pkcs11Module, "pkcs11-module", "", "pkcs11: path of the HSM's PKCS#11 library (default: hsm.pkcs11.module)")
	f.StringVar(&u.pkcs11Token, "pkcs11-token", "", "pkcs11: label of the token whose key seals the KEK (default: hsm.pkcs11.token)")
}

// check refuses a method or split that cannot work, before any material is
// read.
func (u newUnseal) check() error {
	switch hsm.UnsealMethod(u.method) {
	case hsm.MethodKeyFile, hsm.MethodPassphrase, hsm.MethodPKCS11:
		return nil
	case hsm.MethodShamir:
		return hsm.CheckShamir(u.threshold, u.shares)
	case "":
		return errors.New("--unseal METHOD is required: keyfile, passphrase, shamir or pkcs11")
	}
	return fmt.Errorf("--unseal %q: want keyfile, passphrase, shamir or pkcs11", u.method)
}

// material makes the hsm.Material for n's data directory: a key file is
// written at keyFile; the passphrase is read from envNewPassphrase or
// twice from stdin; a token key is created on the token (its settings from
// the flags, else hsm.pkcs11, which is updated in n.cfg). in is what
// unseals with it once in place (shares excepted: they exist only after).
func (u newUnseal) material(ctx context.Context, cmd *cobra.Command, n *node, keyFile string) (hsm.Material, hsm.UnsealInput, error) {
	m := hsm.Material{Method: hsm.UnsealMethod(u.method), Threshold: u.threshold, Shares: u.shares}
	switch m.Method {
	case hsm.MethodKeyFile:
		m.KeyFile = keyFile
		return m, hsm.UnsealInput{KeyFile: keyFile}, nil
	case hsm.MethodPassphrase:
		p, err := newSecretFrom(cmd, envNewPassphrase, "new HSM passphrase")
		if err != nil {
			return m, hsm.UnsealInput{}, err
		}
		m.Passphrase = []byte(p)
		return m, hsm.UnsealInput{Passphrase: m.Passphrase}, nil
	case hsm.MethodPKCS11:
		tok, err := u.token(ctx, n)
		if err != nil {
			return m, hsm.UnsealInput{}, err
		}
		// A fresh key: one already labelled so is the token key of this or
		// another module, and rewrapping under it would change nothing.
		w, err := tok.Wrapper(kekWrapperLabel, true)
		if errors.Is(err, pkcs11.ErrExists) {
			return m, hsm.UnsealInput{}, fmt.Errorf("%w: the token already holds a KEK-sealing key %q (to move to another token, name it with --pkcs11-token)", err, n.cfg.HSM.PKCS11.LabelPrefix+kekWrapperLabel)
		}
		if err != nil {
			return m, hsm.UnsealInput{}, err
		}
		m.Wrapper = w
		return m, hsm.UnsealInput{Wrapper: w}, nil
	}
	return m, hsm.UnsealInput{}, nil // shamir: the shares come back from the rekey
}

// token opens the token the new KEK-sealing key goes on, and records it in
// n.cfg.HSM.PKCS11 (written to the configuration after the rekey). The
// configuration has one token: with the CA keys on it, it cannot change.
func (u newUnseal) token(ctx context.Context, n *node) (*pkcs11.Token, error) {
	p := n.cfg.HSM.PKCS11
	if u.pkcs11Module != "" {
		p.Module = u.pkcs11Module
	}
	if u.pkcs11Token != "" {
		p.Token = u.pkcs11Token
	}
	if p.Module == "" || p.Token == "" {
		return nil, errors.New("--unseal pkcs11 needs --pkcs11-module and --pkcs11-token (or hsm.pkcs11 in the configuration)")
	}
	if p == n.cfg.HSM.PKCS11 {
		return n.pkcs11Token(ctx) // the token already in use, if any
	}
	if n.cfg.CA.KeyStore == "pkcs11" {
		return nil, fmt.Errorf("the CA keys are on token %q (hsm.pkcs11): the KEK-sealing key goes on that token too; leave out --pkcs11-module and --pkcs11-token", n.cfg.HSM.PKCS11.Token)
	}
	cfg := *n.cfg
	cfg.HSM.PKCS11 = p
	tok, err := openToken(ctx, &cfg, n.dir)
	if err != nil {
		return nil, err
	}
	n.cfg.HSM.PKCS11 = p
	n.closing = append(n.closing, func() { tok.Close() })
	return tok, nil
}

// withShares completes in with the first threshold of the new shares.
func withShares(in hsm.UnsealInput, threshold int, shares []string) hsm.UnsealInput {
	if len(shares) >= threshold {
		in.Shares = shares[:threshold]
	}
	return in
}

func hsmRekeyCommand(g *globals) *cobra.Command {
	var u newUnseal
	officer := "officer"
	cmd := &cobra.Command{Use: "rekey", Args: cobra.NoArgs,
		Short: "Change the HSM's unseal material (key file, passphrase, Shamir shares or token key); the master key and every key stay",
		Long: `Rekey wraps the HSM's master key (KEK) under new unseal material, as
Vault's operator rekey does: no key is sealed again, the audit log keeps
verifying, and a running server keeps serving on the key it holds. It needs
the current material (the key file, STRONGROOM_HSM_PASSPHRASE or the
shares on stdin, the token) and the officer (STRONGROOM_OFFICER_PIN or
officer.pin): an officer alone cannot take the module from the holders of
its shares. Audited as hsm.rekey. Once it is done the old material no
longer unseals the keystore, and strongroom.yaml says hsm.unseal METHOD.

New material:
  keyfile     a new random key, written to hsm.key_file (default unseal.key),
              replacing the old one
  passphrase  from ` + envNewPassphrase + `, or typed twice on stdin
  shamir      --threshold M of --shares N, printed ONCE here
  pkcs11      a new AES key on the token (--pkcs11-module, --pkcs11-token or
              hsm.pkcs11; PIN in STRONGROOM_PKCS11_PIN)

Backups wrapped for the module before the rekey still open with the OLD
material only: take a new backup. Every other node of a cluster needs the
new hsm.unseal (and the new key file) before its next start.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := u.check(); err != nil {
				return err
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				return rekey(ctx, cmd, g, n, u, officer)
			})
		}}
	u.register(cmd.Flags(), "new unseal method: keyfile, passphrase, shamir or pkcs11")
	cmd.Flags().StringVar(&officer, "officer", officer, "the officer who authorises the rekey")
	return cmd
}

func rekey(ctx context.Context, cmd *cobra.Command, g *globals, n *node, u newUnseal, officer string) error {
	current, err := unsealMaterial(cmd, n)
	if err != nil {
		return err
	}
	if err := n.hsm.Unseal(ctx, current); err != nil {
		return err
	}
	s, err := officerSession(ctx, cmd, n, officer)
	if err != nil {
		return err
	}
	defer s.Close()
	// A new key file is written beside the one in use and moved over it
	// only once the keystore has taken it: until then the old file is the
	// one that works.
	keyRel := n.cfg.HSM.KeyFile
	if keyRel == "" {
		keyRel = "unseal.key"
	}
	keyFile := config.Path(n.dir, keyRel)
	mat, in, err := u.material(ctx, cmd, n, keyFile+".new")
	if err != nil {
		return err
	}
	oldMethod := n.cfg.HSM.Unseal
	w := cmd.OutOrStdout()
	// New shares are shown before the keystore takes them, and a failure
	// to show them stops the rekey (see hsm.Material.Deliver).
	sh := &shareOutput{w: w, threshold: u.threshold, n: u.shares}
	mat.Deliver = sh.deliver
	res, err := s.Rekey(ctx, current, mat)
	if err != nil {
		if errors.Is(err, os.ErrExist) && mat.Method == hsm.MethodKeyFile {
			return fmt.Errorf("%w (left by an interrupted rekey? if the HSM does not unseal with %s, try that file)", err, keyFile)
		}
		return sh.void(err)
	}
	fmt.Fprintf(w, "HSM unseal material changed from %s to %s by %s (audited); the old material no longer unseals it\n", oldMethod, u.method, officer)
	if mat.Method != hsm.MethodKeyFile {
		printNewMaterial(w, mat, keyFile, res.Shares)
	}
	if mat.Method == hsm.MethodKeyFile {
		if err := os.Rename(mat.KeyFile, keyFile); err != nil {
			fmt.Fprintf(w, "warning: the new key is in %s (moving it to %s: %v)\n", mat.KeyFile, keyFile, err)
			keyRel, keyFile = keyRel+".new", mat.KeyFile
		}
		in.KeyFile = keyFile
	}
	if err := setUnseal(n.dir, mat.Method, keyRel, n.cfg.HSM.PKCS11); err != nil {
		return fmt.Errorf("the HSM now unseals with %s, but updating %s failed: set hsm.unseal: %s by hand: %w", u.method, config.FileName, u.method, err)
	}
	fmt.Fprintf(w, "%s: hsm.unseal is now %s\n", filepath.Join(n.dir, config.FileName), u.method)
	if mat.Method == hsm.MethodKeyFile {
		printNewMaterial(w, mat, keyFile, res.Shares)
	}
	// Prove the new material on a fresh module over the same keystore.
	if err := checkNewMaterial(ctx, n, withShares(in, u.threshold, res.Shares)); err != nil {
		return fmt.Errorf("the keystore was rekeyed, but the new material did not unseal it here: %w", err)
	}
	fmt.Fprintln(w, "checked: the new material unseals the HSM")
	if _, ok := controlClient(g.dataDir); ok {
		fmt.Fprintln(w, "the running ca serve keeps serving with the master key it holds; restart it so that it reads the new configuration")
	}
	also := ""
	if mat.Method == hsm.MethodKeyFile {
		also = " and key file"
	}
	fmt.Fprintf(w, "backups taken before this open only with the old material: take a new one (ca hsm backup); other nodes need the new hsm.unseal%s before they start again\n", also)
	// A rekey rewraps the master key; it does not change it. The old
	// material with any copy of the keystore from before (a database
	// backup, an HSM backup) still opens it.
	fmt.Fprintln(w, "the master key itself is unchanged: the old material still opens any copy of the database or HSM backup made before now. Destroy the old material (and such copies) unless you keep them on purpose; a rekey is no remedy for material that leaked")
	if oldMethod == string(hsm.MethodKeyFile) && mat.Method != hsm.MethodKeyFile {
		fmt.Fprintf(w, "the old key file %s is still there: destroy it (shred -u) unless you keep it for old backups\n", keyFile)
	}
	if oldMethod == string(hsm.MethodPKCS11) {
		fmt.Fprintf(w, "the old token key %q no longer seals anything; remove it with the token's own tools when you no longer need old backups\n", n.cfg.HSM.PKCS11.LabelPrefix+kekWrapperLabel)
	}
	return nil
}

// checkNewMaterial unseals a second module over n's keystore with in.
func checkNewMaterial(ctx context.Context, n *node, in hsm.UnsealInput) error {
	m, err := hsm.New(ctx, hsm.Options{Store: n.db, KeySyncInterval: -1, DeferAuditBinding: true})
	if err != nil {
		return err
	}
	defer m.Close(context.Background())
	return m.Unseal(ctx, in)
}

func printNewMaterial(w io.Writer, mat hsm.Material, keyFile string, shares []string) {
	switch mat.Method {
	case hsm.MethodKeyFile:
		fmt.Fprintf(w, "new unseal key: %s (0600; keep a copy apart from the database)\n", keyFile)
	case hsm.MethodPassphrase:
		fmt.Fprintf(w, "the HSM now unseals with the new passphrase (%s at start, or ca hsm unseal)\n", config.EnvPassphrase)
	case hsm.MethodPKCS11:
		fmt.Fprintln(w, "the HSM now unseals with the token's new key, with no operator")
	case hsm.MethodShamir:
		fmt.Fprintf(w, "the HSM now unseals with the %d shares shown above (any %d of them)\n", mat.Shares, mat.Threshold)
	}
}

// shareOutput shows new Shamir shares once, before the keystore takes
// them (hsm.Material.Deliver): a write that fails (a full disk, a closed
// pipe) stops the operation with nothing changed, instead of leaving a
// keystore only shares nobody saw unseal.
type shareOutput struct {
	w            io.Writer
	threshold, n int
	shown        bool
	voided       string // what void adds; zero: the current material still unseals
}

func (o *shareOutput) deliver(shares []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nUnseal shares (%d needed of %d). They are shown ONCE; give one to each holder:\n", o.threshold, o.n)
	for _, s := range shares {
		b.WriteString("  " + s + "\n")
	}
	if _, err := io.WriteString(o.w, b.String()); err != nil {
		return fmt.Errorf("writing the shares to the output: %w", err)
	}
	// A file on a full disk may take the write and fail only when it
	// reaches the disk; a terminal or pipe cannot sync (EINVAL).
	if f, ok := o.w.(*os.File); ok {
		if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
			return fmt.Errorf("writing the shares to the output: %w", err)
		}
	}
	o.shown = true
	return nil
}

// void adds to err, the failure of an operation after the shares were
// shown, that those shares unseal nothing.
func (o *shareOutput) void(err error) error {
	if o.shown {
		return fmt.Errorf("%w; %s", err, cmp.Or(o.voided, "the shares shown above were NOT taken: discard them, the current material still unseals the HSM"))
	}
	return err
}

// setUnseal sets hsm.unseal (and hsm.key_file for a key file, hsm.pkcs11's
// module and token for a token) in DIR/strongroom.yaml, keeping the rest
// of the file as the operator wrote it.
func setUnseal(dir string, method hsm.UnsealMethod, keyFile string, p config.PKCS11) error {
	return editConfig(filepath.Join(dir, config.FileName), func(top *yaml.Node) error {
		hsmNode := mappingOf(top, "hsm")
		setScalar(hsmNode, "unseal", string(method))
		switch method {
		case hsm.MethodKeyFile:
			setScalar(hsmNode, "key_file", keyFile)
		case hsm.MethodPKCS11:
			tok := mappingOf(hsmNode, "pkcs11")
			setScalar(tok, "module", p.Module)
			setScalar(tok, "token", p.Token)
		}
		return nil
	})
}
