package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// `ca cert revoke-all`: incident response. An API key or ACME account
// that leaked may have had certificates issued for keys its thief holds;
// revoking what it asked for (and the renewals of those) is one command,
// shown first as a dry run.

// requesterKinds are the prefixes of the requesters certificates record.
var requesterKinds = []string{"apikey", "console", "mtls", "acme", "renew", "system"}

// revokeAllPreview is how many serials a dry run prints.
const revokeAllPreview = 20

func revokeAllCommand(g *globals) *cobra.Command {
	var f storage.CertFilter
	var under, reason, invalidity string
	var yes bool
	cmd := &cobra.Command{Use: "revoke-all",
		Short: "Revoke every valid certificate matching filters (--requester, --name, --under, --issuer), with the renewals of those a requester asked for; a dry run without --yes",
		Args:  cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Requester == "" && f.Name == "" && under == "" && f.IssuerID == "" {
				return errors.New("name at least one of --requester, --name, --under, --issuer (revoke-all never revokes everything)")
			}
			if kind, _, ok := strings.Cut(f.Requester, ":"); f.Requester != "" && (!ok || !slices.Contains(requesterKinds, kind)) {
				return fmt.Errorf("--requester %q: want KIND:ID with KIND one of %s (ca cert show prints a certificate's requester; ca apikey list the key ids)",
					f.Requester, strings.Join(requesterKinds, ", "))
			}
			req, err := parseRevokeReason(reason, invalidity)
			if err != nil {
				return err
			}
			if under != "" {
				if f.Under, err = ra.ParseDNSSuffix(under); err != nil {
					return fmt.Errorf("--under: %s", core.DetailOf(err))
				}
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				out := cmd.OutOrStdout()
				certs, skipped, err := matchingValid(ctx, n.db, f)
				if err != nil {
					return err
				}
				if skipped > 0 {
					fmt.Fprintf(out, "%d CA or node certificate(s) match and are left alone (a CA certificate: `ca cert revoke SERIAL --ca`; a node's HTTPS certificate renews itself)\n", skipped)
				}
				if len(certs) == 0 {
					fmt.Fprintln(out, "no valid certificate matches")
					return nil
				}
				if req.Reason == core.ReasonKeyCompromise {
					fmt.Fprintln(out, "keyCompromise also blocks each of their keys: other certificates with those keys, whoever asked for them, are revoked too")
				}
				if !yes {
					fmt.Fprintf(out, "would revoke %d certificate(s) (%s):\n", len(certs), req.Reason)
					for i, c := range certs {
						if i == revokeAllPreview {
							fmt.Fprintf(out, "  … and %d more\n", len(certs)-i)
							break
						}
						fmt.Fprintf(out, "  %s  %s  %s\n", c.Serial, c.Requester, strings.Join(c.Names, ","))
					}
					fmt.Fprintln(out, "nothing was revoked; add --yes to revoke them")
					return nil
				}
				return revokeEach(ctx, out, g, n, certs, req)
			})
		}}
	cmd.Flags().StringVar(&f.Requester, "requester", "", `who asked: "apikey:ID" (with what it issued in the console), "acme:ENDPOINT/ACCOUNT", "mtls:CN" (ca cert show prints it); renewals of their certificates are included`)
	cmd.Flags().StringVar(&f.Name, "name", "", "a SAN the certificate carries")
	cmd.Flags().StringVar(&under, "under", "", "a DNS name the certificates are for, or are under")
	cmd.Flags().StringVar(&f.IssuerID, "issuer", "", "issuer id")
	cmd.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason (keyCompromise also blocks each certificate's key)")
	cmd.Flags().StringVar(&invalidity, "invalidity-date", "", "when the keys were known or suspected compromised (RFC 3339)")
	cmd.Flags().BoolVar(&yes, "yes", false, "revoke; without it, only list what would be revoked")
	return cmd
}

// matchingValid lists every valid certificate matching f, CA certificates
// set apart, and, with a requester, the valid renewals of every
// certificate it asked for, however far down their lines (a renewal's
// requester is "renew:<serial>"): a line is followed through a
// certificate revoked already, since its renewal may have been made
// before.
func matchingValid(ctx context.Context, db *storage.DB, f storage.CertFilter) (out []core.Certificate, skippedCA int, err error) {
	f.Limit = 1000
	if f.Requester == "" {
		f.Status = core.StatusValid
	}
	seen := map[core.Serial]bool{}
	queue := []storage.CertFilter{f}
	if strings.HasPrefix(f.Requester, "apikey:") { // what the key issued in the console, too
		g := f
		g.Requester = "console:" + f.Requester
		queue = append(queue, g)
	}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		for {
			page, next, err := db.ListCertificates(ctx, q)
			if err != nil {
				return nil, 0, err
			}
			for _, c := range page {
				if seen[c.Serial] {
					continue
				}
				seen[c.Serial] = true
				if f.Requester != "" {
					queue = append(queue, storage.CertFilter{Limit: 1000, Requester: ra.RenewalPrincipal(c.Serial)})
				}
				switch {
				case c.Status != core.StatusValid:
				case ra.IsCA(&c) || strings.HasPrefix(c.Requester, ra.SystemRequester):
					skippedCA++
				default:
					out = append(out, c)
				}
			}
			if next == "" {
				break
			}
			q.After = next
		}
	}
	return out, skippedCA, nil
}

// revokeEach revokes certs one by one: through the running server when one
// answers (its OCSP cache, CRLs and the other nodes hear of each at once),
// else in the database with an event for the other nodes. A failure is
// reported and the rest go on.
func revokeEach(ctx context.Context, out io.Writer, g *globals, n *node, certs []core.Certificate, req revokeRequest) error {
	var revoke func(c core.Certificate, r revokeRequest) error
	how := "through the running server"
	client, online := controlClient(g.dataDir)
	if online {
		revoke = func(_ core.Certificate, r revokeRequest) error { return revokeThroughControl(ctx, client, r) }
	} else {
		how = "no server runs on this data directory: its CRLs follow when it starts"
		sh, err := newShared(ctx, n.cfg, n)
		if err != nil {
			return fmt.Errorf("the other nodes could not be told (nothing was revoked): %w", err)
		}
		defer sh.close()
		revoke = func(c core.Certificate, r revokeRequest) error {
			if err := recordOffline(ctx, n, r); err != nil {
				return err
			}
			return sh.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(c.IssuerID, r.Serial))
		}
	}
	var failed int
	for _, c := range certs {
		r := req
		r.Serial = c.Serial
		if err := revoke(c, r); err != nil {
			failed++
			fmt.Fprintf(out, "%s: %v\n", c.Serial, err)
		}
	}
	fmt.Fprintf(out, "revoked %d of %d certificate(s) (%s; %s)\n", len(certs)-failed, len(certs), req.Reason, how)
	if online && req.Reason == core.ReasonKeyCompromise && failed < len(certs) {
		// Only what the server confirmed: each revocation it answered
		// blocked the key in the same transaction.
		fmt.Fprintln(out, "the keys of those revoked are blocked, and the server revokes the other certificates with them (see its log)")
	}
	if !online && req.Reason == core.ReasonKeyCompromise {
		same, err := revokeBlockedOffline(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "their keys are blocked, and %d other certificate(s) with them were revoked\n", same)
	}
	if failed > 0 {
		return fmt.Errorf("%d revocation(s) failed", failed)
	}
	return nil
}
