package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
)

// envBackupPassphrase carries the optional backup passphrase.
const envBackupPassphrase = "STRONGROOM_BACKUP_PASSPHRASE"

func hsmBackupCommand(g *globals) *cobra.Command {
	var out string
	var withPass bool
	cmd := &cobra.Command{Use: "backup", Args: cobra.NoArgs,
		Short: "Write an HSM backup file (every key still sealed, users, audit log); needs the HSM unsealed",
		Long: `Writes one backup file holding every HSM object still sealed, the users
(PIN hashes, roles, lock state), the keystore's meta and the audit chain. It
is authenticated under a key derived from the KEK and holds no plaintext
secret. By default the same unseal material as the module's (key file,
passphrase or shares) opens it; with --passphrase it opens with the backup
passphrase from ` + envBackupPassphrase + ` (else typed twice on stdin) instead.

The backup covers the HSM only: certificates, ACME accounts and the rest of
the database need their own database backup.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			opts := hsm.BackupOptions{Actor: "cli"}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				// After the unseal: shares come first on stdin, before
				// anything else a command reads there.
				if withPass {
					p, err := newSecretFrom(cmd, envBackupPassphrase, "backup passphrase")
					if err != nil {
						return fmt.Errorf("--passphrase: %w", err)
					}
					opts.Passphrase = []byte(p)
				}
				// As scheduled backups are written: a killed command leaves
				// no empty file under the backup's name (found by a review).
				var buf bytes.Buffer
				err := hsm.WriteBackupFile(out, false, func(w io.Writer) error {
					if err := n.hsm.Backup(ctx, &buf, opts); err != nil {
						return err
					}
					_, err := w.Write(buf.Bytes())
					return err
				})
				if err != nil {
					return err // "backup: …"
				}
				info, _ := hsm.InspectBackup(bytes.NewReader(buf.Bytes()))
				fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s: %d users, %d key versions, %d audit entries (opens with: %s)\n",
					out, info.Users, info.Objects, info.AuditEntries, opensWith(info))
				warnUnverified(cmd.OutOrStdout(), info)
				noteTokenKeys(cmd.OutOrStdout(), n, info)
				return nil
			})
		}}
	cmd.Flags().StringVar(&out, "out", "", "backup file to create (must not exist)")
	cmd.Flags().BoolVar(&withPass, "passphrase", false, "protect the backup with the passphrase in "+envBackupPassphrase+" (else typed twice on stdin)")
	return cmd
}

// backupPassphrase is the passphrase a --passphrase backup opens with.
func backupPassphrase(cmd *cobra.Command) (string, error) {
	if p := secretFrom(cmd, envBackupPassphrase, "Backup passphrase"); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("this backup is protected by a backup passphrase: set %s or type it on stdin", envBackupPassphrase)
}

func opensWith(info hsm.BackupInfo) string {
	if info.PassphraseProtected {
		return "the backup passphrase"
	}
	return "the module's " + string(info.Method) + " unseal material"
}

func hsmRestoreCommand(g *globals) *cobra.Command {
	var in, fromDir string
	var u newUnseal
	cmd := &cobra.Command{Use: "restore", Args: cobra.NoArgs,
		Short: "Restore an HSM backup into a fresh data directory (--data NEWDIR)",
		Long: `Restores an HSM backup into the data directory given by --data, which must
hold no initialised HSM. With --from-dir OLD, strongroom.yaml and the issuer
certificates it names are copied from OLD first (existing files are kept).
Without a strongroom.yaml, one with the defaults is written (SQLite in
NEWDIR/strongroom.db) using the backup's unseal method.

Material: a key-file module reads the key file named in the configuration
(default NEWDIR/unseal.key — copy it there first); a passphrase module reads
STRONGROOM_HSM_PASSPHRASE or asks on stdin; a Shamir module asks for shares
on stdin; a backup made with --passphrase reads ` + envBackupPassphrase + `
or asks on stdin.

A backup made with --passphrase can take new unseal material as it is
restored (--unseal METHOD): the restored module then unseals with it, not
with the backed-up module's, so a lost key file, token or set of shares is
recovered from the backup and its passphrase. keyfile writes a new
hsm.key_file (default NEWDIR/unseal.key, which must not exist); passphrase
reads ` + envNewPassphrase + ` or asks twice on stdin; shamir prints
--threshold M of --shares N new shares once; pkcs11 makes a key on the
token (--pkcs11-module, --pkcs11-token). strongroom.yaml is updated.

Not in an HSM backup, to copy yourself: the key file (keyfile method), the
CA user's PIN (ca.pin or STRONGROOM_HSM_PIN), the key service user's PIN
(apps.pin or STRONGROOM_APPS_PIN), officer.pin if you use it. Nor is the
certificate database (issued certificates, revocations, API keys, ACME
accounts, CRL numbers): restored from an HSM backup alone, the node has
none, so it forgets every revocation (its CRL numbers still go on
increasing); a database backup holds it (and the HSM's sealed objects too).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return errors.New("--in FILE is required")
			}
			data, err := readBackupFile(in)
			if err != nil {
				return err
			}
			info, err := hsm.InspectBackup(bytes.NewReader(data))
			if err != nil {
				return err
			}
			if u.method != "" {
				if !info.PassphraseProtected {
					return fmt.Errorf("--unseal: this backup opens with the module's %s material, not a backup passphrase: restore it with that material, then change it with ca hsm rekey", info.Method)
				}
				if err := u.check(); err != nil {
					return err
				}
			}
			// A failed restore removes what it created (the directory, the
			// copied or default configuration, the database), so a retry
			// does not silently keep them.
			var created undo
			method := info.Method
			if u.method != "" {
				method = hsm.UnsealMethod(u.method)
			}
			err = prepareRestoreDir(g.dataDir, fromDir, method, &created)
			if err == nil {
				err = withNode(cmd, g, func(ctx context.Context, n *node) error {
					if u.method != "" {
						return restoreRekeyed(ctx, cmd, n, data, info, u, &created)
					}
					return restoreInto(ctx, cmd, n, data, info)
				})
			}
			if err != nil {
				created.run()
			}
			return err
		}}
	cmd.Flags().StringVar(&in, "in", "", "backup file to restore")
	cmd.Flags().StringVar(&fromDir, "from-dir", "", "old data directory to copy strongroom.yaml and the issuer certificates from")
	u.register(cmd.Flags(), "give the restored module new unseal material (keyfile, passphrase, shamir or pkcs11) instead of the backed-up module's; a --passphrase backup only")
	return cmd
}

// prepareRestoreDir creates dir and gives it a configuration: copied from
// fromDir with the issuer certificates, or the defaults for the backup's
// unseal method (method). What it creates, and the database the restore
// will create, is noted in created.
func prepareRestoreDir(dir, fromDir string, method hsm.UnsealMethod, created *undo) error {
	created.note(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	cfgPath := filepath.Join(dir, config.FileName)
	if fromDir != "" {
		old, err := config.Load(fromDir)
		if err != nil {
			return fmt.Errorf("--from-dir: %w", err)
		}
		files := []string{config.FileName, old.CA.Root.Cert}
		for _, is := range old.CA.Intermediates {
			files = append(files, is.Cert)
		}
		for _, f := range files {
			if filepath.IsAbs(f) {
				continue // an absolute path already names the file wherever it is
			}
			created.note(filepath.Join(dir, f))
			if err := copyIfMissing(filepath.Join(fromDir, f), filepath.Join(dir, f)); err != nil {
				return err
			}
		}
	}
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		c := config.Default()
		c.HSM.Unseal = string(method)
		if method != hsm.MethodKeyFile {
			c.HSM.KeyFile = ""
		}
		created.note(cfgPath)
		if err := c.Write(dir); err != nil {
			return fmt.Errorf("writing default configuration: %w", err)
		}
	}
	cfg, err := config.Load(dir)
	if err != nil {
		return err
	}
	created.noteDB(cfg, dir)
	return nil
}

// readBackupFile reads a backup file, refusing what is not one (its magic,
// read first) or is larger than a backup can be, before holding it in
// memory: `--in /dev/zero` grew without bound.
func readBackupFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading backup: %w", err)
	}
	defer f.Close()
	if _, err := hsm.InspectBackup(io.LimitReader(f, hsm.MaxBackupBytes)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading backup: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, hsm.MaxBackupBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading backup: %w", err)
	}
	if len(data) > hsm.MaxBackupBytes {
		return nil, fmt.Errorf("%s is larger than a backup can be (%d bytes)", path, hsm.MaxBackupBytes)
	}
	return data, nil
}

func copyIfMissing(from, to string) error {
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	b, err := os.ReadFile(from)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // e.g. no certificates yet
		}
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// restoreInto restores data into n's empty HSM, then unseals it with the
// original material and verifies the audit chain.
func restoreInto(ctx context.Context, cmd *cobra.Command, n *node, data []byte, info hsm.BackupInfo) error {
	if err := restoreTargetEmpty(ctx, n); err != nil {
		return err
	}
	if string(info.Method) != n.cfg.HSM.Unseal {
		return fmt.Errorf("the backup's module unseals with %q but %s says hsm.unseal: %q", info.Method, config.FileName, n.cfg.HSM.Unseal)
	}
	ri := hsm.RestoreInput{Actor: "cli"}
	if info.PassphraseProtected {
		p, err := backupPassphrase(cmd)
		if err != nil {
			return err
		}
		ri.BackupPassphrase = []byte(p)
	} else {
		var err error
		if ri.Unseal, err = unsealMaterial(cmd, n); err != nil {
			return err
		}
	}
	if err := n.hsm.Restore(ctx, bytes.NewReader(data), ri); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "restored %d users, %d key versions and %d audit entries into %s\n", info.Users, info.Objects, info.AuditEntries, n.dir)
	warnUnverified(w, info)
	var unsealErr error
	if info.PassphraseProtected {
		unsealErr = unsealForCLI(ctx, cmd, n)
	} else {
		unsealErr = n.hsm.Unseal(ctx, ri.Unseal)
	}
	if unsealErr != nil {
		fmt.Fprintf(w, "restored, but not unsealed here: %v\n", unsealErr)
		if info.PassphraseProtected {
			fmt.Fprintf(w, "if that material is lost: restore the backup again into an empty data directory with --unseal METHOD, to give it new material\n")
		}
	} else {
		fmt.Fprintln(w, "HSM unsealed with the original material: self-tests passed")
	}
	return checkRestoredNode(ctx, w, n, info.Method == hsm.MethodKeyFile && unsealErr != nil)
}

// checkRestoredNode verifies the restored audit log and lists what the
// operator still has to copy; keyFile: the unseal key file among them.
func checkRestoredNode(ctx context.Context, w io.Writer, n *node, keyFileMissing bool) error {
	rep, err := n.hsm.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if rep.FirstBad != 0 {
		return fmt.Errorf("restored audit log does not verify at #%d: %s", rep.FirstBad, rep.Problem)
	}
	fmt.Fprintf(w, "audit log intact: %d entries\n", rep.Entries)
	// The key file is listed only when it is still missing: a keyfile
	// module unsealed above with the one already in place.
	keyFile := ""
	if keyFileMissing {
		keyFile = "the unseal key file, "
	}
	tokenPIN := ""
	if n.cfg.CA.KeyStore == "pkcs11" || n.cfg.HSM.Unseal == "pkcs11" {
		tokenPIN = "the PKCS#11 token's PIN (STRONGROOM_PKCS11_PIN or hsm.pkcs11.pin_file), "
	}
	fmt.Fprintln(w, "still to copy by hand: the CA user's PIN (ca.pin or STRONGROOM_HSM_PIN), the key service user's PIN\n"+
		"(apps.pin or STRONGROOM_APPS_PIN; without it the key service stays off), officer.pin if you use it,\n"+
		keyFile+tokenPIN+missingCACerts(n)+"and the certificate database (certificates, revocations, API keys,\n"+
		"ACME accounts, CRL numbers) from a database backup: without it this node has forgotten every revocation")
	return nil
}

// restoreRekeyed restores a passphrase backup into n's empty HSM with new
// unseal material (u), sets it in the configuration, and unseals with it.
func restoreRekeyed(ctx context.Context, cmd *cobra.Command, n *node, data []byte, info hsm.BackupInfo, u newUnseal, created *undo) error {
	if err := restoreTargetEmpty(ctx, n); err != nil {
		return err
	}
	p, err := backupPassphrase(cmd)
	if err != nil {
		return err
	}
	keyRel := n.cfg.HSM.KeyFile
	if keyRel == "" {
		keyRel = "unseal.key"
	}
	keyFile := config.Path(n.dir, keyRel)
	mat, in, err := u.material(ctx, cmd, n, keyFile)
	if err != nil {
		return err
	}
	if mat.Method == hsm.MethodKeyFile {
		created.note(keyFile)
	}
	w := cmd.OutOrStdout()
	sh := &shareOutput{w: w, threshold: u.threshold, n: u.shares}
	mat.Deliver = sh.deliver
	res, err := n.hsm.RestoreRekeyed(ctx, bytes.NewReader(data), hsm.RestoreInput{BackupPassphrase: []byte(p), Actor: "cli"}, mat)
	if err != nil {
		return sh.void(err)
	}
	fmt.Fprintf(w, "restored %d users, %d key versions and %d audit entries into %s, with new unseal material: %s (was %s)\n",
		info.Users, info.Objects, info.AuditEntries, n.dir, u.method, info.Method)
	printNewMaterial(w, mat, keyFile, res.Shares)
	warnUnverified(w, info)
	if err := setUnseal(n.dir, mat.Method, keyRel, n.cfg.HSM.PKCS11); err != nil {
		return fmt.Errorf("updating %s (set hsm.unseal: %s by hand): %w", config.FileName, u.method, err)
	}
	n.cfg.HSM.Unseal = u.method
	if err := n.hsm.Unseal(ctx, withShares(in, u.threshold, res.Shares)); err != nil {
		return fmt.Errorf("restored, but the new material did not unseal it: %w", err)
	}
	fmt.Fprintln(w, "HSM unsealed with the new material: self-tests passed; the backed-up module's material does not unseal it")
	return checkRestoredNode(ctx, w, n, false)
}

// restoreTargetEmpty refuses a node whose HSM is initialised.
func restoreTargetEmpty(ctx context.Context, n *node) error {
	if ok, err := n.hsm.Initialized(ctx); err != nil {
		return err
	} else if ok {
		if n.cfg.Database.Driver == "postgres" {
			return fmt.Errorf("the HSM in the PostgreSQL database that %s names (database.dsn or %s) is already initialised; restore needs an empty database", config.FileName, config.EnvDatabaseDSN)
		}
		return fmt.Errorf("the HSM in %s is already initialised; restore needs a fresh data directory", n.dir)
	}
	return nil
}

// missingCACerts names the CA certificate files the configuration lists
// that the data directory lacks (ca serve needs them), for the checklist.
func missingCACerts(n *node) string {
	var missing []string
	for _, is := range append([]config.Issuer{n.cfg.CA.Root}, n.cfg.CA.Intermediates...) {
		if _, err := os.Stat(config.Path(n.dir, is.Cert)); err != nil {
			missing = append(missing, is.Cert)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "the CA certificates (" + strings.Join(missing, ", ") + "), "
}

// warnUnverified says which user records in a backup did not verify when
// it was taken (altered outside the HSM).
func warnUnverified(w io.Writer, info hsm.BackupInfo) {
	if len(info.Unverified) == 0 {
		return
	}
	names := make([]string, len(info.Unverified))
	for i, n := range info.Unverified {
		names[i] = shown(n)
	}
	fmt.Fprintf(w, "warning: the records of %s were altered outside the HSM when this backup was taken: "+
		"they are restored still refused (no login, no signing) until `ca hsm users reset NAME --role ROLE`\n",
		strings.Join(names, ", "))
}

// noteTokenKeys says what an HSM backup of a node using a PKCS#11 token
// does not cover (a review found an operator told nothing): the CA keys on
// the token, and, with the token sealing the KEK, that the backup opens
// only with that token.
func noteTokenKeys(w io.Writer, n *node, info hsm.BackupInfo) {
	if n.cfg.CA.KeyStore == "pkcs11" {
		fmt.Fprintf(w, "note: the CA keys are not in this backup: they are on PKCS#11 token %q (labels %s); back them up with the HSM's own means\n",
			n.cfg.HSM.PKCS11.Token, caKeyLabels(n))
	}
	if info.Method == hsm.MethodPKCS11 && !info.PassphraseProtected {
		fmt.Fprintf(w, "note: this backup opens only with the token's key %q; take one with --passphrase too, to restore without that token\n", n.cfg.HSM.PKCS11.LabelPrefix+kekWrapperLabel)
	}
}
