package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
)

// The default issuer is the first intermediate in ca.intermediates whose
// certificate is neither revoked nor expired: ca serve passes over a
// revoked one (a compromise drill) to the next. `ca issuer list` shows
// each certificate's status from the database, and `ca issuer default ID`
// puts an existing, usable intermediate first, so the configuration says
// what the CA does.

func issuerListCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "list", Short: "Show the root and intermediates from the configuration, with each certificate's status (the default is the first intermediate neither revoked nor expired)",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				cfg, now := n.cfg, time.Now()
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tROLE\tSTATUS\tSUBJECT\tKEY\tNOT AFTER\tKEY LABEL\tNAME CONSTRAINTS")
				var passed []string // intermediates before the default, with why
				def := ""
				for i, is := range append([]config.Issuer{cfg.CA.Root}, cfg.CA.Intermediates...) {
					role := "root"
					if is.External {
						role = "root (external: its key is not here)"
					}
					if i > 0 {
						role = "intermediate"
					}
					certs, err := readCerts(config.Path(n.dir, is.Cert))
					if errors.Is(err, fs.ErrNotExist) && cfg.CA.Root.External && i > 0 {
						fmt.Fprintf(w, "%s\t%s\t-\t%s\t-\t-\t%s\t-\n", is.ID, role, "not installed (ca issuer install "+is.ID+")", is.KeyLabel)
						continue
					}
					if err != nil {
						return fmt.Errorf("issuer %s: %w", is.ID, err)
					}
					cert, constraints := certs[0], "-"
					// Under an external root the file may hold the CAs
					// above the intermediate: theirs apply too.
					for _, c := range certs {
						if nc := ca.NameConstraintsOf(c); !nc.IsZero() {
							constraints = nc.String()
							if c != cert {
								constraints += " (" + c.Subject.CommonName + "'s)"
							}
							break
						}
					}
					status, usable, err := caCertStatus(ctx, n, certs, now)
					if err != nil {
						return fmt.Errorf("issuer %s: reading its certificate's record: %w", is.ID, err)
					}
					eku := chainEKU(certs)
					if i > 0 && eku != "" {
						role += " (" + eku + ")"
					}
					if i > 0 && def == "" {
						switch {
						case usable && allowsServerAuth(certs):
							def, role = is.ID, "intermediate (default)"
						case usable:
							passed = append(passed, is.ID+" ("+status+", its chain does not allow serverAuth)")
						default:
							passed = append(passed, is.ID+" ("+status+")")
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", is.ID, role, status, cert.Subject.CommonName, ca.KeyType(cert.PublicKey),
						cert.NotAfter.UTC().Format(time.DateOnly), is.KeyLabel, constraints)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				switch {
				case def == "" && len(passed) > 0:
					fmt.Fprintln(out, "\nNo intermediate can issue: new certificates are refused (503); OCSP and CRLs are still served. Add one with `ca issuer add ID --default` and restart ca serve.")
				case len(passed) > 0:
					fmt.Fprintf(out, "\nca serve passes over %s and issues from %s; make that the configuration with `ca issuer default %s`.\n",
						strings.Join(passed, ", "), def, def)
				}
				return nil
			})
		}}
}

func issuerDefaultCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "default ID", Short: "Make an existing intermediate the default issuer (first in ca.intermediates); restart ca serve to use it",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				moved, err := makeDefaultIssuer(ctx, n, args[0], time.Now())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if !moved {
					fmt.Fprintf(out, "issuer %s is already the default (first in ca.intermediates).\n", args[0])
					return nil
				}
				fmt.Fprintf(out, "issuer %s is now the default (first in ca.intermediates): new certificates and renewals come from it.\n"+
					"Restart ca serve to use it. Nodes sharing the database need this configuration too.\n", args[0])
				return nil
			})
		}}
}

// makeDefaultIssuer moves intermediate id first in ca.intermediates of the
// node's configuration file. An unknown, uninstalled, revoked or expired
// one is refused, as is one whose name constraints refuse the node's own
// HTTPS certificate (the default issuer issues it). moved is false when
// it is first already.
func makeDefaultIssuer(ctx context.Context, n *node, id string, now time.Time) (moved bool, err error) {
	i := slices.IndexFunc(n.cfg.CA.Intermediates, func(is config.Issuer) bool { return is.ID == id })
	if i < 0 {
		var ids []string
		for _, is := range n.cfg.CA.Intermediates {
			ids = append(ids, is.ID)
		}
		return false, fmt.Errorf("no intermediate %q in ca.intermediates (there are %s); make one with `ca issuer add %s --default`", id, strings.Join(ids, ", "), id)
	}
	is := n.cfg.CA.Intermediates[i]
	certs, err := readCerts(config.Path(n.dir, is.Cert))
	if errors.Is(err, fs.ErrNotExist) && n.cfg.CA.Root.External {
		return false, fmt.Errorf("issuer %s's certificate is not installed: ca issuer install %s --cert FILE --default", id, id)
	}
	if err != nil {
		return false, fmt.Errorf("issuer %s: %w", id, err)
	}
	cert := certs[0]
	status, usable, err := caCertStatus(ctx, n, certs, now)
	if err != nil {
		return false, fmt.Errorf("issuer %s: reading its certificate's record: %w", id, err)
	}
	if !usable {
		return false, fmt.Errorf("issuer %s's certificate is %s: it cannot issue; choose another (ca issuer list) or make one with `ca issuer add ID --default`", id, status)
	}
	if why := serverCertRefusal(ca.NameConstraintsOf(cert), n.cfg.Hostname); why != "" {
		return false, fmt.Errorf("issuer %s's name constraints refuse the CA's own HTTPS certificate (for %s), which the default issuer issues: %s", id, n.cfg.Hostname, why)
	}
	if !allowsServerAuth(certs) {
		return false, fmt.Errorf("issuer %s's chain does not allow serverAuth: the default issuer issues TLS certificates and the CA's own HTTPS certificate", id)
	}
	if i == 0 {
		return false, nil
	}
	return true, editIntermediates(filepath.Join(n.dir, config.FileName), func(list *yaml.Node) error {
		for j, item := range list.Content {
			if v := mappingValue(item, "id"); v != nil && v.Value == id {
				list.Content = append([]*yaml.Node{item}, slices.Delete(list.Content, j, j+1)...)
				return nil
			}
		}
		return fmt.Errorf("ca.intermediates in %s has no entry with id %s", config.FileName, id)
	})
}

// caCertStatus is the status of an issuer's certificate (certs[0], then
// any CAs above it from its file) from its record and its chain's
// validity: "valid", "revoked (reason, date)" or "expired", and whether it
// may issue. A certificate without a record (made outside this CA's
// ceremonies) is not revoked as far as the CA knows.
func caCertStatus(ctx context.Context, n *node, certs []*x509.Certificate, now time.Time) (status string, usable bool, err error) {
	rec, err := n.db.GetCertificate(ctx, core.SerialFromBig(certs[0].SerialNumber))
	expired := slices.ContainsFunc(certs, func(c *x509.Certificate) bool { return !now.Before(c.NotAfter) })
	switch {
	case err == nil && rec.Status == core.StatusRevoked:
		return fmt.Sprintf("revoked (%s, %s)", rec.RevocationReason, rec.RevokedAt.UTC().Format(time.DateOnly)), false, nil
	case err != nil && !core.IsNotFound(err):
		return "", false, err
	case expired:
		return "expired", false, nil
	}
	return "valid", true, nil
}

// allowsServerAuth reports whether no certificate of an issuer's chain
// limits its extended key usage to something without serverAuth: the
// default issuer needs it (ca.CA.DefaultIssuer skips such a chain).
func allowsServerAuth(certs []*x509.Certificate) bool {
	return ca.ChainEKURefusal(certs, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) == ""
}

// chainEKU names the extended key usage an issuer's own certificate
// limits it to ("codeSigning"), or "" when it allows the TLS defaults
// (serverAuth and clientAuth) or carries none.
func chainEKU(certs []*x509.Certificate) string {
	us := certs[0].ExtKeyUsage
	if len(us) == 0 || len(us) == 2 && slices.Contains(us, x509.ExtKeyUsageServerAuth) && slices.Contains(us, x509.ExtKeyUsageClientAuth) {
		return ""
	}
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = ca.EKUName(u)
	}
	return strings.Join(names, ", ")
}
