package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/hsm"
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
	var unconstrained, replace bool
	officerName := "officer"
	cmd := &cobra.Command{Use: "sign CSR_FILE", Short: "Sign an external subordinate CA's CSR with the root, as the officer (PIN from STRONGROOM_OFFICER_PIN); name constraints keep it to its names; audited",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := constraints.parse()
			if err != nil {
				return err
			}
			if open := openNameTypes(nc); len(open) > 0 && !unconstrained {
				return fmt.Errorf("the subordinate CA could issue for any %s; constrain each (or sign it --unconstrained, for every name the root is trusted for)",
					strings.Join(open, ", any "))
			}
			if !nc.IsZero() && unconstrained {
				return errors.New("--unconstrained and --permit/--exclude contradict each other")
			}
			if pathLen < 0 || pathLen > maxSubCAPathLen {
				return fmt.Errorf("--path-len %d: want 0 to %d", pathLen, maxSubCAPathLen)
			}
			life, err := api.ParseDuration("--lifetime", lifetime)
			if err != nil {
				return err
			}
			if life < 24*time.Hour {
				return fmt.Errorf("--lifetime %s: at least a day", lifetime)
			}
			csr, err := readCSRFile(args[0])
			if err != nil {
				return err
			}
			// The CA's crypto user signs, on the officer's authority: the
			// officer's attestation records what was signed.
			return withOfficer(cmd, g, officerName, func(ctx context.Context, n *node, officer *hsm.Session) error {
				cert, err := signSubCA(ctx, n, csr, replace, ca.IntermediateOptions{NameConstraints: nc, PathLen: pathLen, Lifetime: life})
				if err != nil {
					return err
				}
				if err := officer.Attest(ctx, "ceremony.sign-subordinate-ca", "cert:"+string(core.SerialFromBig(cert.SerialNumber)),
					fmt.Sprintf("subject=%q key=%x path_len=%d constraints=%q", cert.Subject.String(),
						core.KeyHash(cert.RawSubjectPublicKeyInfo), pathLen, cmp.Or(nc.String(), "none"))); err != nil {
					return fmt.Errorf("the certificate is made and recorded, but the attestation failed: %w", err)
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
					core.SerialFromBig(cert.SerialNumber), cert.NotAfter.UTC().Format(time.DateOnly), pathLen)
				if !nc.IsZero() {
					fmt.Fprintf(w, "name constraints: %s\n", nc)
					for _, note := range constraintNotes(nc) {
						fmt.Fprintln(w, "note: "+note)
					}
				} else {
					fmt.Fprintln(w, "no name constraints: it can issue for any name")
				}
				fmt.Fprintln(w, "Its chain is this certificate and the root. Revoke it with ca cert revoke SERIAL --ca.")
				return nil
			})
		}}
	f := cmd.Flags()
	constraints.register(f, "subordinate CA")
	f.BoolVar(&unconstrained, "unconstrained", false, "sign without name constraints (the subordinate CA can issue for any name)")
	f.BoolVar(&replace, "replace", false, "sign a key that already has a valid CA certificate (a reissue; revoke the old one after)")
	f.IntVar(&pathLen, "path-len", 0, "how many CAs may follow below it, 0 to 8 (0: it issues only end-entity certificates)")
	f.StringVar(&lifetime, "lifetime", "1825d", "validity (days as 1825d, or a Go duration); capped at the root's")
	f.StringVar(&out, "out", "", "write the certificate here (default: standard output)")
	f.StringVar(&officerName, "officer", officerName, "officer user name (PIN from STRONGROOM_OFFICER_PIN or DIR/officer.pin)")
	return cmd
}

// maxSubCAPathLen caps --path-len: GnuTLS and NSS refuse a
// pathLenConstraint of 2^31 or more, and no private hierarchy needs more.
const maxSubCAPathLen = 8

// externalCARequester is the requester recorded for the certificates of
// external subordinate CAs (the CA's own are storage.CeremonyRequester's).
const externalCARequester = "ca issuer sign"

// openNameTypes lists the kinds of name nc leaves an external CA free to
// issue: each of DNS names, IPv4 and IPv6 addresses and email addresses
// needs a permitted subtree or its every-name exclusion. (URIs are left to
// the operator: GnuTLS enforces no URI constraint anyway.)
func openNameTypes(nc ca.NameConstraints) []string {
	var open []string
	if len(nc.PermittedDNS) == 0 && !slices.Contains(nc.ExcludedDNS, "") {
		open = append(open, "DNS name (--permit dns:team.corp.internal, or --exclude dns: for none)")
	}
	for _, fam := range []struct {
		all  netip.Prefix
		name string
	}{{netip.MustParsePrefix("0.0.0.0/0"), "IPv4 address (--permit ip:10.20.0.0/16, or --exclude ip:0.0.0.0/0 for none)"},
		{netip.MustParsePrefix("::/0"), "IPv6 address (--permit ip:fd00:20::/32, or --exclude ip:::/0 for none)"}} {
		if !slices.ContainsFunc(nc.PermittedIP, func(p netip.Prefix) bool { return p.Addr().Is4() == fam.all.Addr().Is4() }) && !slices.Contains(nc.ExcludedIP, fam.all) {
			open = append(open, fam.name)
		}
	}
	if len(nc.PermittedEmail) == 0 {
		// No exclusion means "every mailbox" to all verifiers (OpenSSL
		// reads an empty one as no host); a permitted reserved name does.
		open = append(open, "email address (--permit email:team.corp.example, or --permit email:invalid for none: a name reserved never to exist)")
	}
	return open
}

// constraintNotes says what verifiers do not enforce of nc for a CA that
// issues on its own.
func constraintNotes(nc ca.NameConstraints) []string {
	var notes []string
	for _, x := range nc.ExcludedDNS {
		if _, parent, ok := strings.Cut(x, "."); ok && x != "" {
			notes = append(notes, fmt.Sprintf("a wildcard *.%s it issues covers the excluded %s for OpenSSL, GnuTLS and NSS (only Go refuses it)", parent, x))
		}
	}
	if len(nc.PermittedURI) > 0 {
		notes = append(notes, "GnuTLS enforces no URI constraint")
	}
	return notes
}

// signSubCA checks the CSR and has the root sign its key as a subordinate
// CA with the CSR's subject, then records the certificate. A key that
// already has a valid CA certificate is refused unless replace: revoking
// one for keyCompromise would leave the other valid.
func signSubCA(ctx context.Context, n *node, csr *x509.CertificateRequest, replace bool, o ca.IntermediateOptions) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the CSR's signature does not verify: %w", err)
	}
	if csr.Subject.CommonName == "" {
		return nil, errors.New("the CSR has no subject common name: a CA certificate needs one")
	}
	o.CommonName, o.RawSubject = csr.Subject.CommonName, csr.RawSubject
	keyHash := core.KeyHash(csr.RawSubjectPublicKeyInfo)
	if blocked, err := n.db.KeyBlocked(ctx, keyHash); err != nil || blocked {
		if err == nil {
			err = errors.New("the CSR's key is blocked (compromised): it gets no certificate")
		}
		return nil, err
	}
	if serials, err := n.db.CACertificatesWithKey(ctx, keyHash); err != nil {
		return nil, err
	} else if len(serials) > 0 && !replace {
		return nil, fmt.Errorf("the CSR's key already has a valid CA certificate (%s): revoke it first, or add --replace to reissue (then revoke the old one)", serials[0])
	}
	sess, root, inters, err := n.ceremonyIssuers(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	if root.External() {
		return nil, errors.New("the root is external (its key is not here): its owner signs subordinate CAs")
	}
	for _, is := range append([]*ca.Issuer{root}, inters...) {
		if strings.EqualFold(is.Certificate().Subject.CommonName, csr.Subject.CommonName) {
			return nil, fmt.Errorf("the CSR's common name %q is issuer %s's: an external CA must be told apart from the CA's own", csr.Subject.CommonName, is.ID())
		}
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
	if err := recordSignedCert(ctx, n.db, root.ID(), "subordinate-ca", externalCARequester, cert); err != nil {
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
