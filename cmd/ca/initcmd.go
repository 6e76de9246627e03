package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
)

func initCommand(g *globals) *cobra.Command {
	var c ceremony
	var keyType, caKeys string
	var constraints nameConstraintFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Key ceremony: create the HSM, its officer and CA user, the root and intermediate keys and certificates",
		Long: `init creates a new CA in the data directory.

Unseal methods:
  keyfile     a random key in DIR/unseal.key (development; anyone with the file can unseal)
  passphrase  a passphrase from STRONGROOM_HSM_PASSPHRASE, stretched with Argon2id
  shamir      --threshold M of --shares N printed once here; M holders must unseal
  pkcs11      an AES key on a real HSM's token (--pkcs11-module, --pkcs11-token, PIN in
              STRONGROOM_PKCS11_PIN) seals the master key: serve unseals with no operator

The officer PIN comes from STRONGROOM_OFFICER_PIN; if unset, a random PIN is
written to DIR/officer.pin (0600). The CA's own crypto user gets a random PIN
in DIR/ca.pin (0600); move it to STRONGROOM_HSM_PIN and delete the file for
production.

With --external-root FILE the root stays offline, where it is (the usual
enterprise layout): FILE is its certificate, no root key is made here, and
the intermediate's key gets a CSR (DIR/intermediate.csr) for the root's owner
to sign; ca issuer install puts the signed certificate in place, and ca serve
starts once it is there.

With --ca-keys pkcs11 the root and intermediate keys are generated on a real
HSM's token (non-extractable, sensitive) and used there; the token's user PIN
comes from STRONGROOM_PKCS11_PIN, at init and at every start. The embedded
module still holds the OCSP responder and EAB keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := filepath.Abs(g.dataDir)
			if err != nil {
				return err
			}
			c.Dir, c.KeyType, c.Out = dir, hsm.KeyType(keyType), cmd.OutOrStdout()
			c.OfficerPIN = os.Getenv(config.EnvOfficerPIN)
			if c.Unseal == "passphrase" {
				p := os.Getenv(config.EnvPassphrase)
				if p == "" {
					return fmt.Errorf("passphrase unseal: set %s", config.EnvPassphrase)
				}
				c.Passphrase = []byte(p)
			}
			if caKeys != "hsm" && caKeys != "pkcs11" {
				return fmt.Errorf("--ca-keys %q: want hsm or pkcs11", caKeys)
			}
			c.CAKeysOnToken = caKeys == "pkcs11"
			if c.CAKeysOnToken || c.Unseal == "pkcs11" {
				if c.PKCS11.Module == "" || c.PKCS11.Token == "" {
					return fmt.Errorf("--ca-keys pkcs11 and --unseal pkcs11 need --pkcs11-module and --pkcs11-token")
				}
				if c.PKCS11PIN = os.Getenv(config.EnvPKCS11PIN); c.PKCS11PIN == "" {
					return fmt.Errorf("pkcs11: set %s to the token's user PIN", config.EnvPKCS11PIN)
				}
			} else {
				c.PKCS11 = config.PKCS11{}
			}
			if c.RedisPrefix != "" && c.RedisAddr == "" {
				return errors.New("--redis-prefix needs --redis (without Redis a node keeps its state in memory)")
			}
			switch keyType {
			case "p256", "p384", "rsa2048", "rsa3072", "rsa4096":
			default:
				return fmt.Errorf("--key-type %q: want p256, p384, rsa2048, rsa3072 or rsa4096", keyType)
			}
			if c.RootConstraints, err = constraints.parse(); err != nil {
				return err
			}
			if c.ExternalRoot != "" && !c.RootConstraints.IsZero() {
				return errors.New("--permit/--exclude constrain a root made here: an external root's constraints are in its certificate (or the root's owner puts them in the intermediate's)")
			}
			if err := keepsServerCert(c.RootConstraints, cmp.Or(c.Hostname, "localhost")); err != nil {
				return err
			}
			sh := &shareOutput{w: cmd.OutOrStdout(), threshold: c.Threshold, n: c.Shares,
				voided: "the shares shown above are void: discard them"}
			c.DeliverShares = sh.deliver
			res, err := runCeremony(cmd.Context(), c)
			if err != nil {
				return sh.void(err)
			}
			if err := createAdminKey(cmd.Context(), dir); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if c.ExternalRoot != "" {
				fmt.Fprintf(out, "CA created in %s under the external root %s\n  root certificate: %s\n  intermediate CSR: %s (its key is in the HSM)\n  admin API key:    %s\n",
					dir, c.ExternalRoot, filepath.Join(dir, "root.pem"), filepath.Join(dir, csrFile("intermediate")), filepath.Join(dir, adminKeyFile))
			} else {
				fmt.Fprintf(out, "CA created in %s\n  root certificate: %s\n  intermediate:     %s\n  admin API key:    %s\n",
					dir, filepath.Join(dir, "root.pem"), filepath.Join(dir, "intermediate.pem"), filepath.Join(dir, adminKeyFile))
			}
			if !c.RootConstraints.IsZero() {
				fmt.Fprintf(out, "  name constraints: %s (the root's: every certificate below it keeps within them)\n", c.RootConstraints)
			}
			if res.OfficerFile != "" {
				fmt.Fprintf(out, "  officer PIN:      %s (move it somewhere safe)\n", res.OfficerFile)
			}
			if sh.shown {
				fmt.Fprintf(out, "  unseal shares:    the %d shown above (any %d unseal the HSM)\n", c.Shares, c.Threshold)
			}
			if c.ExternalRoot != "" {
				fmt.Fprintln(out, "\n"+signingRequest(filepath.Join(dir, csrFile("intermediate")), "intermediate", ""))
				fmt.Fprintln(out, "\nThen start the CA with: ca serve --data", dir)
				return nil
			}
			fmt.Fprintln(out, "\nStart the CA with: ca serve --data", dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyType, "key-type", "p256", "CA key type: p256, p384, rsa2048, rsa3072, rsa4096")
	f.StringVar(&c.Unseal, "unseal", "keyfile", "unseal method: keyfile, passphrase, shamir, pkcs11")
	f.IntVar(&c.Threshold, "threshold", 3, "shamir: shares needed to unseal")
	f.IntVar(&c.Shares, "shares", 5, "shamir: shares to create")
	f.StringVar(&c.Hostname, "hostname", "", "DNS name clients use for this CA (default localhost)")
	f.StringVar(&c.ListenHTTPS, "listen-https", "", "HTTPS listen address (default 127.0.0.1:8443)")
	f.StringVar(&c.ListenHTTP, "listen-http", "", "plain HTTP listen address for OCSP and CRLs (default 127.0.0.1:8080)")
	f.StringVar(&c.Database, "database", "", "sqlite (default) or postgres (DSN from STRONGROOM_DATABASE_DSN or --database-dsn without a password)")
	f.StringVar(&c.DatabaseDSN, "database-dsn", "", "PostgreSQL URL to write into the config (no password: use STRONGROOM_DATABASE_DSN for one)")
	f.StringVar(&c.RedisAddr, "redis", "", "Redis host:port shared by several nodes (default: in-memory state)")
	f.StringVar(&c.RedisPrefix, "redis-prefix", "", `with --redis: prefix of this cluster's keys and channels (default "strongroom:"; each cluster sharing a Redis database needs its own)`)
	f.StringVar(&c.CommonName, "name", "Strongroom", "prefix of the CA certificates' common names")
	f.StringVar(&caKeys, "ca-keys", "hsm", "where the root and intermediate keys live: hsm (the embedded module) or pkcs11 (a real HSM; PIN from STRONGROOM_PKCS11_PIN)")
	f.StringVar(&c.PKCS11.Module, "pkcs11-module", "", "pkcs11: path of the HSM's PKCS#11 library")
	f.StringVar(&c.PKCS11.Token, "pkcs11-token", "", "pkcs11: label of the token that holds the CA keys")
	f.StringVar(&c.PKCS11.LabelPrefix, "pkcs11-label-prefix", "", "pkcs11: put this before the label of every key the CA makes on the token (to share a token or partition)")
	constraints.register(f, "root (so of every certificate of this CA)")
	f.StringVar(&c.ExternalRoot, "external-root", "", "certificate file of an offline root that keeps its key elsewhere: no root key is made here, and the intermediate gets a key and a CSR for that root to sign (then ca issuer install)")
	return cmd
}
