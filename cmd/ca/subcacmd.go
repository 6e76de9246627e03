package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
)

// External subordinate CAs. `ca issuer sign CSR` is a key ceremony for a
// CA whose key Strongroom does not hold — a service mesh's, a Kubernetes
// cluster's, another team's CA — as Vault's sign-intermediate and AWS
// Private CA's subordinate CAs are: the root signs the CSR's key into a CA
// certificate (linted, recorded, revocable with ca cert revoke, on the
// root's CRL and OCSP), and name constraints keep what that CA can issue
// to its names. Choosing no constraints must be said (--unconstrained): an
// unconstrained subordinate CA can issue for any name, trusted wherever the
// root is.

func signSubCACommand(g *globals) *cobra.Command {
	var constraints nameConstraintFlags
	var out, lifetime string
	var pathLen int
	var unconstrained bool
	cmd := &cobra.Command{Use: "sign CSR_FILE", Short: "Sign an external subordinate CA's CSR with the root (a key ceremony; name constraints keep it to its names)",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := constraints.parse()
			if err != nil {
				return err
			}
			if nc.IsZero() && !unconstrained {
				return errors.New("say which names the subordinate CA may issue for (--permit dns:team.corp.internal …, --exclude …), or --unconstrained for every name the root is trusted for")
			}
			if !nc.IsZero() && unconstrained {
				return errors.New("--unconstrained and --permit/--exclude contradict each other")
			}
			life, err := api.ParseDuration("--lifetime", lifetime)
			if err != nil {
				return err
			}
			csr, err := readCSRFile(args[0])
			if err != nil {
				return err
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				cert, err := signSubCA(ctx, n, csr, ca.IntermediateOptions{NameConstraints: nc, PathLen: pathLen, Lifetime: life})
				if err != nil {
					return err
				}
				data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
				w := cmd.OutOrStdout()
				if out != "" {
					if err := os.WriteFile(out, data, 0o644); err != nil {
						return err
					}
					fmt.Fprintf(w, "certificate: %s\n", out)
				} else {
					w.Write(data)
					w = cmd.ErrOrStderr()
				}
				fmt.Fprintf(w, "subordinate CA %q, serial %s, valid until %s, path length %d\n", cert.Subject.CommonName,
					cert.SerialNumber.Text(16), cert.NotAfter.UTC().Format(time.DateOnly), pathLen)
				if !nc.IsZero() {
					fmt.Fprintf(w, "name constraints: %s\n", nc)
				} else {
					fmt.Fprintln(w, "no name constraints: it can issue for any name")
				}
				fmt.Fprintln(w, "Its chain is this certificate and the root. Revoke it with ca cert revoke SERIAL.")
				return nil
			})
		}}
	f := cmd.Flags()
	constraints.register(f, "subordinate CA")
	f.BoolVar(&unconstrained, "unconstrained", false, "sign without name constraints (the subordinate CA can issue for any name)")
	f.IntVar(&pathLen, "path-len", 0, "how many CAs may follow below it (0: it issues only end-entity certificates)")
	f.StringVar(&lifetime, "lifetime", "1825d", "validity (days as 1825d, or a Go duration); capped at the root's")
	f.StringVar(&out, "out", "", "write the certificate here (default: standard output)")
	return cmd
}

// signSubCA checks the CSR and has the root sign its key as a subordinate
// CA with the CSR's subject, then records the certificate.
func signSubCA(ctx context.Context, n *node, csr *x509.CertificateRequest, o ca.IntermediateOptions) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the CSR's signature does not verify: %w", err)
	}
	s := csr.Subject
	if s.CommonName == "" {
		return nil, errors.New("the CSR has no subject common name: a CA certificate needs one")
	}
	o.CommonName = s.CommonName
	if len(s.Organization) > 0 {
		o.Organization = s.Organization[0]
	}
	if len(s.Country) > 0 {
		o.Country = s.Country[0]
	}
	sess, err := n.caSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	root, _, err := n.issuers(ctx, sess, nil)
	if err != nil {
		return nil, err
	}
	if why := root.SubtreesRefusal(o.NameConstraints); why != "" {
		return nil, fmt.Errorf("--permit %s: the subordinate CA could issue none of those names", why)
	}
	urls := intermediateOptions(n.cfg, o.CommonName, time.Now)
	o.Now, o.CAIssuerURLs, o.CRLURLs, o.OCSPURLs = urls.Now, urls.CAIssuerURLs, urls.CRLURLs, urls.OCSPURLs
	cert, err := ca.NewIntermediate(ctx, root, csr.PublicKey, o)
	if err != nil {
		return nil, fmt.Errorf("making the subordinate CA certificate: %w", err)
	}
	if err := recordCeremonyCert(ctx, n.db, root.ID(), cert); err != nil {
		return nil, err
	}
	return cert, nil
}

// readCSRFile reads a PEM or DER PKCS #10 request.
func readCSRFile(path string) (*x509.CertificateRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%s holds a PEM %q, not a CERTIFICATE REQUEST", path, b.Type)
		}
		data = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a PKCS #10 request: %w", path, err)
	}
	return csr, nil
}
