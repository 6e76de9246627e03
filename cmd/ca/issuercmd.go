package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
	"github.com/strongroom-pki/strongroom/hsm/pkcs11"
)

// Intermediate rotation. `ca issuer add ID --default` is a small key
// ceremony: a new key pair in the HSM (or on the PKCS#11 token that holds
// the CA's keys), a certificate for it signed by the root inside the HSM
// (linted like every certificate), recorded in the database and written
// beside the others, and the issuer added to the configuration — first,
// with --default, so that new certificates and renewals come from it once
// ca serve restarts. The previous intermediates stay configured: they keep
// signing OCSP answers and CRLs for the certificates they issued until
// those expire.

func issuerCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "issuer", Short: "List the CA's issuers, add an intermediate (rotation), choose the default, sign an external subordinate CA"}
	var makeDefault bool
	var keyType, commonName string
	var ekuNames []string
	var constraints nameConstraintFlags
	add := &cobra.Command{Use: "add ID", Short: "Make a new intermediate under the root: key in the HSM, certificate, configuration",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			nc, err := constraints.parse()
			if err != nil {
				return err
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if makeDefault {
					// The default issuer issues the node's own HTTPS certificate.
					if err := keepsServerCert(nc, n.cfg.Hostname); err != nil {
						return err
					}
				}
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				var ekus []x509.ExtKeyUsage
				for _, name := range ekuNames {
					u, err := ca.ParseEKU(name)
					if err != nil {
						return fmt.Errorf("--eku: %w", err)
					}
					if u == x509.ExtKeyUsageOCSPSigning {
						return errors.New("--eku ocspSigning: no CA needs it (each intermediate certifies its own OCSP responder, whatever its usage), and lints refuse a CA certificate with it")
					}
					ekus = append(ekus, u)
				}
				res, err := addIntermediate(ctx, n, newIssuerSpec{ID: args[0], Default: makeDefault, KeyType: keyType,
					CommonName: commonName, Constraints: nc, EKU: ekus})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if res.CSR != "" {
					flags := ""
					if makeDefault {
						flags = " --default"
					}
					fmt.Fprintf(out, "issuer %s: key %q made where the CA's keys live; the root is external, so its certificate request is %s\n\n%s\n",
						res.ID, res.KeyLabel, res.CSR, signingRequest(res.CSR, res.ID, flags))
					return nil
				}
				fmt.Fprintf(out, "issuer %s: %s, %s key %q, valid until %s\ncertificate: %s\n", res.ID, res.Cert.Subject.CommonName,
					ca.KeyType(res.Cert.PublicKey), res.KeyLabel, res.Cert.NotAfter.UTC().Format(time.DateOnly), res.Path)
				if nc := ca.NameConstraintsOf(res.Cert); !nc.IsZero() {
					fmt.Fprintf(out, "name constraints: %s\n", nc)
				}
				if makeDefault {
					fmt.Fprintln(out, "It is now the default issuer: new certificates and renewals come from it.")
				}
				fmt.Fprintln(out, "Restart ca serve to use it. Nodes sharing the database need this configuration too (they find the certificate in the database).")
				return nil
			})
		}}
	add.Flags().BoolVar(&makeDefault, "default", false, "make it the default issuer (first intermediate)")
	add.Flags().StringVar(&keyType, "key-type", "", "p256, p384, rsa2048, rsa3072 or rsa4096 (default: the default intermediate's)")
	add.Flags().StringVar(&commonName, "common-name", "", "subject common name (default: the root's name with \"Intermediate CA ID\")")
	add.Flags().StringSliceVar(&ekuNames, "eku", nil, "extended key usage of the intermediate, what verifiers accept below it: serverAuth, clientAuth (the default: both), codeSigning, emailProtection, timeStamping; an intermediate for code signing: --eku codeSigning")
	constraints.register(add.Flags(), "intermediate (the root's apply too)")
	cmd.AddCommand(issuerListCommand(g), add, issuerDefaultCommand(g), installCommand(g), csrCommand(g), signSubCACommand(g))
	return cmd
}

type newIssuerSpec struct {
	ID, KeyType, CommonName string
	Default                 bool
	Constraints             ca.NameConstraints
	// EKU is the intermediate's extended key usage (zero: serverAuth and
	// clientAuth): what verifiers accept below it.
	EKU []x509.ExtKeyUsage
}

type newIssuer struct {
	ID, KeyLabel, Path string
	Cert               *x509.Certificate
	// CSR is, under an external root, the request written instead of a
	// certificate.
	CSR string
}

// addIntermediate runs the ceremony for one new intermediate and records
// it in the configuration file.
func addIntermediate(ctx context.Context, n *node, spec newIssuerSpec) (*newIssuer, error) {
	cfg := n.cfg
	entry := config.Issuer{ID: spec.ID, Cert: spec.ID + ".pem", KeyLabel: spec.ID}
	next := *cfg
	next.CA.Intermediates = append([]config.Issuer{entry}, cfg.CA.Intermediates...)
	if err := next.Validate(); err != nil {
		return nil, err
	}
	path := config.Path(n.dir, entry.Cert)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s already exists", path)
	}
	sess, root, inters, err := n.ceremonyIssuers(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	kt := spec.KeyType
	if kt == "" && len(inters) > 0 {
		kt = ca.KeyType(inters[0].Certificate().PublicKey)
	}
	switch kt {
	case "p256", "p384", "rsa2048", "rsa3072", "rsa4096":
	default:
		return nil, fmt.Errorf("key type %q: use p256, p384, rsa2048, rsa3072 or rsa4096", kt)
	}
	cn := spec.CommonName
	if cn == "" {
		cn = strings.TrimSuffix(root.Certificate().Subject.CommonName, " Root CA") + " Intermediate CA " + spec.ID
	}
	if root.External() && len(spec.EKU) > 0 {
		return nil, errors.New("--eku: the root is external, so its owner writes the intermediate's certificate and its extended key usage")
	}
	if spec.Default && len(spec.EKU) > 0 && !slices.Contains(spec.EKU, x509.ExtKeyUsageServerAuth) {
		return nil, errors.New("--default with --eku without serverAuth: the default issuer issues the CA's own HTTPS certificate and TLS certificates")
	}
	if root.External() && !spec.Constraints.IsZero() {
		return nil, errors.New("--permit/--exclude: the root is external, so its owner writes the intermediate's certificate and any name constraints in it")
	}
	if why := root.SubtreesRefusal(spec.Constraints); why != "" {
		return nil, fmt.Errorf("--permit %s: the intermediate could issue none of those names", why)
	}
	signer, undo, err := newIssuerKey(ctx, n, sess, entry.KeyLabel, kt)
	if err != nil {
		return nil, err
	}
	if root.External() {
		// The root signs elsewhere: a CSR for its owner; `ca issuer
		// install` adds the intermediate to the configuration.
		org := ""
		if o := root.Certificate().Subject.Organization; len(o) > 0 {
			org = o[0]
		}
		csr := config.Path(n.dir, csrFile(spec.ID))
		if err := writeCSR(csr, cn, org, signer); err != nil {
			if undo != nil {
				err = errors.Join(err, undo())
			}
			return nil, err
		}
		return &newIssuer{ID: spec.ID, KeyLabel: entry.KeyLabel, CSR: csr}, nil
	}
	opts := intermediateOptions(cfg, cn, time.Now)
	opts.NameConstraints = spec.Constraints
	opts.ExtKeyUsage = spec.EKU
	if o := root.Certificate().Subject.Organization; len(o) > 0 {
		opts.Organization = o[0]
	}
	cert, err := ca.NewIntermediate(ctx, root, signer.Public(), opts)
	if err != nil {
		err = fmt.Errorf("making the %s certificate: %w", spec.ID, err)
		if undo == nil {
			return nil, fmt.Errorf("%w (the key labelled %q stays on the token: delete it there before trying again)", err, entry.KeyLabel)
		}
		if uerr := undo(); uerr != nil {
			return nil, fmt.Errorf("%w; destroying its new key %q failed too: %v", err, entry.KeyLabel, uerr)
		}
		return nil, err
	}
	if err := recordCeremonyCert(ctx, n.db, root.ID(), cert); err != nil {
		return nil, err
	}
	if err := writeCert(path, cert); err != nil {
		return nil, err
	}
	if err := addIssuerToConfig(filepath.Join(n.dir, config.FileName), entry, spec.Default); err != nil {
		return nil, fmt.Errorf("the key and %s are made, but the configuration was not updated: %w", path, err)
	}
	return &newIssuer{ID: spec.ID, KeyLabel: entry.KeyLabel, Path: path, Cert: cert}, nil
}

// newIssuerKey makes the key pair where the CA's keys live; a label in use
// is refused. undo destroys it again (nil on a PKCS#11 token, where
// Strongroom destroys nothing).
func newIssuerKey(ctx context.Context, n *node, sess *hsm.Session, label, kt string) (s crypto.Signer, undo func() error, err error) {
	if n.cfg.CA.KeyStore == "pkcs11" {
		tok, err := n.pkcs11Token(ctx)
		if err != nil {
			return nil, nil, err
		}
		if has, err := tok.Has(label); err != nil || has {
			if err == nil {
				err = fmt.Errorf("the token already holds a key labelled %q: %w", n.cfg.HSM.PKCS11.LabelPrefix+label, pkcs11.ErrExists)
			}
			return nil, nil, err
		}
		s, err = tok.Generate(label, pkcs11.KeyType(kt))
		return s, nil, err
	}
	if _, err := sess.FindKey(ctx, label); err == nil {
		return nil, nil, fmt.Errorf("the HSM already holds a key labelled %q", label)
	} else if !errors.Is(err, hsm.ErrNotFound) {
		return nil, nil, err
	}
	key, err := sess.GenerateKey(ctx, hsm.KeySpec{Type: hsm.KeyType(kt), Label: label, Usage: hsm.UsageSign | hsm.UsageVerify})
	if err != nil {
		return nil, nil, err
	}
	undo = func() error { return sess.DestroyKey(ctx, key.ID) }
	if s, err = sess.Signer(ctx, key.ID); err != nil {
		return nil, nil, errors.Join(err, undo())
	}
	return s, undo, nil
}

// addIssuerToConfig inserts the issuer into ca.intermediates of the YAML
// file, first or last, keeping the rest of the file (comments included) as
// the operator wrote it.
func addIssuerToConfig(path string, is config.Issuer, first bool) error {
	return editIntermediates(path, func(list *yaml.Node) error {
		item := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			scalar("id"), scalar(is.ID), scalar("cert"), scalar(is.Cert), scalar("key_label"), scalar(is.KeyLabel)}}
		if first {
			list.Content = append([]*yaml.Node{item}, list.Content...)
		} else {
			list.Content = append(list.Content, item)
		}
		return nil
	})
}

// editIntermediates has edit change the ca.intermediates list of the YAML
// file (made if missing) and writes the file back, keeping the rest of it
// (comments included) as the operator wrote it; an edit that leaves a
// configuration that does not parse is not written.
func editIntermediates(path string, edit func(list *yaml.Node) error) error {
	return editConfig(path, func(top *yaml.Node) error {
		caNode := mappingOf(top, "ca")
		list := mappingValue(caNode, "intermediates")
		if list == nil {
			list = &yaml.Node{Kind: yaml.SequenceNode}
			caNode.Content = append(caNode.Content, scalar("intermediates"), list)
		}
		if list.Kind != yaml.SequenceNode {
			return errors.New("ca.intermediates is not a list")
		}
		return edit(list)
	})
}
