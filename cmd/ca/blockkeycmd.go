package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/storage"
)

// `ca cert block-key FILE` and `ca cert blocked-keys`: a key reported
// compromised without a certificate to revoke (found in a repository, a
// log, a backup), and the list of blocked keys. Revoking a certificate for
// keyCompromise blocks its key by itself.

func blockKeyCommands(g *globals) []*cobra.Command {
	var comment string
	block := &cobra.Command{Use: "block-key FILE",
		Short: "Block a key (a public key, certificate, CSR or leaked private key, PEM or DER): nothing is issued for it again, and its unexpired certificates are revoked for keyCompromise",
		Args:  cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			pemBytes, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			hash, err := keyHashOfPEM(pemBytes)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			req := blockKeyRequest{Hash: hex.EncodeToString(hash), Comment: comment}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				out := cmd.OutOrStdout()
				if client, ok := controlClient(g.dataDir); ok {
					res, err := blockKeyThroughControl(ctx, client, req)
					if err != nil {
						return err
					}
					printBlocked(out, req.Hash, res, "through the running server")
				} else {
					res, err := blockKeyOffline(ctx, n, hash, comment)
					if err != nil {
						return err
					}
					printBlocked(out, req.Hash, res, "no server runs on this data directory: its CRLs follow when it starts")
				}
				cas, err := n.db.CACertificatesWithKey(ctx, hash)
				for _, s := range cas {
					fmt.Fprintf(out, "the CA certificate %s carries this key and stays valid: revoke it with `ca cert revoke %s --ca --reason keyCompromise`\n", s, s)
				}
				return err
			})
		}}
	block.Flags().StringVar(&comment, "comment", "", "why (kept with the block, shown by blocked-keys)")
	list := &cobra.Command{Use: "blocked-keys", Short: "List the blocked keys (SHA-256 of their SubjectPublicKeyInfo)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				keys, err := n.db.BlockedKeys(ctx)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "KEY SHA-256\tBLOCKED\tBY REVOKING\tCOMMENT")
				for _, k := range keys {
					by := string(k.Serial)
					if by == "" {
						by = "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", hex.EncodeToString(k.Hash), k.BlockedAt.UTC().Format(time.RFC3339), by, k.Comment)
				}
				return w.Flush()
			})
		}}
	unblock := &cobra.Command{Use: "unblock-key SHA256",
		Short: "Remove a key's block (the hash blocked-keys prints); certificates revoked because of it stay revoked",
		Args:  cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			hash, err := hex.DecodeString(strings.TrimSpace(args[0]))
			if err != nil || len(hash) != 32 {
				return fmt.Errorf("%q is not a key's SHA-256 (64 hex digits, as ca cert blocked-keys prints)", args[0])
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				removed, err := n.db.UnblockKey(ctx, hash)
				if err != nil {
					return err
				}
				if !removed {
					return fmt.Errorf("key %s is not blocked", args[0])
				}
				fmt.Fprintf(cmd.OutOrStdout(), "unblocked key %s: certificates may be issued for it again (those revoked because of it stay revoked)\n", args[0])
				return nil
			})
		}}
	return []*cobra.Command{block, list, unblock}
}

// blockKeyRequest is the control socket's POST /block-key body.
type blockKeyRequest struct {
	Hash    string `json:"key_sha256"` // hex
	Comment string `json:"comment,omitempty"`
}

// blockKeyResult says what blocking did.
type blockKeyResult struct {
	Added   bool `json:"added"`   // false: it was blocked already
	Revoked int  `json:"revoked"` // certificates revoked for it now
}

func printBlocked(out io.Writer, hash string, res blockKeyResult, how string) {
	verb := "blocked key"
	if !res.Added {
		verb = "key was blocked already:"
	}
	fmt.Fprintf(out, "%s %s; %d certificate(s) with it revoked for keyCompromise (%s)\n", verb, hash, res.Revoked, how)
}

// keyHashOfPEM finds the public key in a file — a PEM public key (PKIX or
// PKCS #1), certificate, CSR or private key (leaked keys usually turn up as
// private keys: only its public half is used, and nothing of it leaves this
// process), or the same as DER — and returns its core.KeyHash, over the key
// re-encoded as crypto/x509 encodes it in the certificates it makes.
func keyHashOfPEM(data []byte) ([]byte, error) {
	var pub any
	var err error
	if b, _ := pem.Decode(data); b != nil {
		pub, err = publicKeyOf(b.Type, b.Bytes)
	} else if pub, err = publicKeyOfDER(data); err != nil {
		return nil, errors.New("neither PEM nor DER of a public key, certificate, CSR or private key")
	}
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return core.KeyHash(spki), nil
}

// publicKeyOf parses one PEM block's contents by its type.
func publicKeyOf(typ string, der []byte) (any, error) {
	var pub any
	var err error
	switch typ {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(der)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(der)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(der); err == nil {
			pub = c.PublicKey
		}
	case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
		var c *x509.CertificateRequest
		if c, err = x509.ParseCertificateRequest(der); err == nil {
			pub = c.PublicKey
		}
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
		pub, err = publicOfPrivate(typ, der)
	default:
		return nil, fmt.Errorf("a %q PEM block holds no key we read (want PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE, CERTIFICATE REQUEST or a private key)", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the %s: %w", strings.ToLower(typ), err)
	}
	return pub, nil
}

// publicKeyOfDER tries each DER structure a key may come in.
func publicKeyOfDER(der []byte) (any, error) {
	for _, typ := range []string{"CERTIFICATE", "CERTIFICATE REQUEST", "PUBLIC KEY", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "RSA PUBLIC KEY"} {
		if pub, err := publicKeyOf(typ, der); err == nil {
			return pub, nil
		}
	}
	return nil, errors.New("no key")
}

func publicOfPrivate(typ string, der []byte) (any, error) {
	var k any
	var err error
	switch typ {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	default:
		k, err = x509.ParsePKCS8PrivateKey(der)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T has no public key", k)
	}
	return s.Public(), nil
}

func blockKeyThroughControl(ctx context.Context, client *http.Client, req blockKeyRequest) (blockKeyResult, error) {
	var res blockKeyResult
	err := postControl(ctx, client, "/block-key", req, &res)
	return res, err
}

// blockKey is the control socket's POST /block-key: block, then revoke the
// key's certificates through the serving app (its OCSP cache, CRLs and the
// other nodes hear of each at once).
func (c *control) blockKey(w http.ResponseWriter, r *http.Request) {
	auth := c.revoker.Load()
	if auth == nil {
		http.Error(w, "the CA is sealed or starting: try again when it serves", http.StatusServiceUnavailable)
		return
	}
	var req blockKeyRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "bad block-key request: "+err.Error(), http.StatusBadRequest)
		return
	}
	hash, err := hex.DecodeString(req.Hash)
	if err != nil || len(hash) != 32 {
		http.Error(w, "bad block-key request: key_sha256 is 64 hex digits", http.StatusBadRequest)
		return
	}
	var res blockKeyResult
	if res.Added, err = c.n.db.BlockKey(r.Context(), storage.BlockedKey{Hash: hash, BlockedAt: time.Now().UTC(), Comment: req.Comment}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if res.Revoked, err = auth.SweepBlockedKeys(r.Context()); err != nil {
		http.Error(w, fmt.Sprintf("the key is blocked, but revoking its certificates failed (the server retries every 15 s): %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// blockKeyOffline blocks with no server running here, revokes the key's
// certificates and tells the other nodes, if any.
func blockKeyOffline(ctx context.Context, n *node, hash []byte, comment string) (blockKeyResult, error) {
	var res blockKeyResult
	var err error
	if res.Added, err = n.db.BlockKey(ctx, storage.BlockedKey{Hash: hash, BlockedAt: time.Now().UTC(), Comment: comment}); err != nil {
		return res, err
	}
	res.Revoked, err = revokeBlockedOffline(ctx, n)
	return res, err
}

// revokeBlockedOffline revokes the certificates whose key is blocked and
// publishes each revocation on the shared event bus.
func revokeBlockedOffline(ctx context.Context, n *node) (int, error) {
	// Rows stored before this release have no key hash yet (a server
	// records them at start): record them first, or the sweep misses them.
	if _, _, err := n.db.BackfillKeyHashes(ctx); err != nil {
		return 0, fmt.Errorf("the key is blocked, but recording older certificates' keys failed (a server's sweep retries): %w", err)
	}
	same, err := n.db.RevokeBlockedKeys(ctx, time.Now().UTC())
	if err != nil {
		return 0, fmt.Errorf("the key is blocked, but revoking its certificates failed (a server's sweep retries): %w", err)
	}
	if len(same) == 0 {
		return 0, nil
	}
	sh, err := newShared(ctx, n.cfg, n)
	if err != nil {
		return len(same), fmt.Errorf("revoked %d certificate(s) with the blocked key, but the other nodes could not be told: %w", len(same), err)
	}
	defer sh.close()
	for _, c := range same {
		if err := sh.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(c.IssuerID, c.Serial)); err != nil {
			return len(same), fmt.Errorf("revoked %d certificate(s) with the blocked key, but the other nodes could not be told: %w", len(same), err)
		}
	}
	return len(same), nil
}
