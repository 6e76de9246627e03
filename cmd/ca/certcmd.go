package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/core"
	"github.com/strongroom-pki/strongroom/ra"
	"github.com/strongroom-pki/strongroom/storage"
)

// `ca cert list|show|revoke`: the operator's view of issued certificates
// without the REST API. Reads go to the database. A revocation goes
// through the running server's control socket when one answers, so that
// its OCSP cache, its CRLs and every other node hear of it at once, as for
// a revocation over REST; with no server running here it is recorded in
// the database and published on the shared event bus (Redis, for the
// other nodes of a cluster; the CRLs follow at the next start).

func certCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "List, show and revoke issued certificates; block compromised keys"}
	var status, name, under, issuer, requester, within string
	var limit int
	list := &cobra.Command{Use: "list", Short: "List certificates in serial order (filters: --status, --name, --under, --issuer, --expiring-within)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := storage.CertFilter{Status: core.CertStatus(status), Name: name, IssuerID: issuer, Requester: requester, Limit: limit}
			switch f.Status {
			case "", core.StatusValid, core.StatusRevoked:
			case "intent":
				f.Status, f.Intents = "", true
			default:
				return fmt.Errorf("--status %q: want valid, revoked or intent", status)
			}
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("--limit %d: want 1 to 1000", limit)
			}
			if under != "" {
				var err error
				if f.Under, err = ra.ParseDNSSuffix(under); err != nil {
					return fmt.Errorf("--under: %s", core.DetailOf(err))
				}
			}
			if within != "" {
				d, err := api.ParseDuration("--expiring-within", within)
				if err != nil {
					return err
				}
				f.ExpiringAfter, f.ExpiringBefore = time.Now(), time.Now().Add(d)
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				certs, next, err := n.db.ListCertificates(ctx, f)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SERIAL\tSTATUS\tPROFILE\tISSUER\tNOT AFTER\tNAMES")
				for _, c := range certs {
					st := string(c.Status)
					if f.Intents {
						st = "intent"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, st, c.Profile, c.IssuerID,
						c.NotAfter.UTC().Format(time.DateOnly), strings.Join(c.Names, ","))
				}
				if next != "" {
					fmt.Fprintf(w, "(more: raise --limit, at most 1000)\n")
				}
				return w.Flush()
			})
		}}
	list.Flags().StringVar(&status, "status", "", "valid, revoked, or intent: recorded intents never stored (perhaps signed, never handed out: a crash or a failure after signing)")
	list.Flags().StringVar(&name, "name", "", "a SAN the certificate carries")
	list.Flags().StringVar(&under, "under", "", "only those with a DNS name equal to or under this one (team.corp.internal)")
	list.Flags().StringVar(&issuer, "issuer", "", "issuer id")
	list.Flags().StringVar(&requester, "requester", "", `who asked: "apikey:ID", "acme:ENDPOINT/ACCOUNT", …`)
	list.Flags().IntVar(&limit, "limit", 100, "how many")
	list.Flags().StringVar(&within, "expiring-within", "", "only those that expire within this long (e.g. 30d)")
	var asPEM bool
	show := &cobra.Command{Use: "show SERIAL", Short: "Show one certificate's record (--pem: the certificate)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				serial, err := core.ParseSerial(args[0])
				if err != nil {
					return err
				}
				c, err := n.db.GetCertificate(ctx, serial)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asPEM {
					if len(c.DER) == 0 {
						return fmt.Errorf("certificate %s was never signed (status %s)", serial, c.Status)
					}
					return pem.Encode(out, &pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
				}
				fmt.Fprintf(out, "serial:     %s\nstatus:     %s\nprofile:    %s\nissuer:     %s\nrequester:  %s\nsubject:    %s\nnames:      %s\nnot before: %s\nnot after:  %s\n",
					c.Serial, c.Status, c.Profile, c.IssuerID, c.Requester, c.Subject, strings.Join(c.Names, ", "),
					c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
				if c.Origin != "" {
					fmt.Fprintf(out, "origin:     %s (who asked for the first certificate of this renewal line)\n", c.Origin)
				}
				if c.Status == core.StatusRevoked {
					fmt.Fprintf(out, "revoked:    %s (%s)\n", c.RevokedAt.UTC().Format(time.RFC3339), c.RevocationReason)
					if !c.InvalidityDate.IsZero() {
						fmt.Fprintf(out, "invalid since: %s\n", c.InvalidityDate.UTC().Format(time.RFC3339))
					}
				}
				return nil
			})
		}}
	show.Flags().BoolVar(&asPEM, "pem", false, "print the certificate as PEM")
	var reason, invalidity string
	var revokeCA bool
	revoke := &cobra.Command{Use: "revoke SERIAL", Short: "Revoke a certificate (RFC 5280 reason; OCSP, CRLs and other nodes follow at once)",
		Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			req, err := parseRevokeRequest(args[0], reason, invalidity)
			if err != nil {
				return err
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				rec, err := n.db.GetCertificate(ctx, req.Serial)
				if err != nil {
					return err
				}
				if ra.IsCA(rec) && !revokeCA {
					return fmt.Errorf("%s is the CA certificate %q: revoking it stops everything it issued from verifying; add --ca to do so", req.Serial, rec.Subject)
				}
				if client, ok := controlClient(g.dataDir); ok {
					if err := revokeThroughControl(ctx, client, req); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (%s) through the running server\n", req.Serial, req.Reason)
					if req.Reason == core.ReasonKeyCompromise {
						fmt.Fprintln(cmd.OutOrStdout(), "its key is blocked, and the other end-entity certificates with it were revoked (see the server's log)")
					}
				} else if err := revokeOffline(ctx, cmd.OutOrStdout(), n, req); err != nil {
					return err
				}
				if req.Reason == core.ReasonKeyCompromise {
					return listCAsWithKey(ctx, cmd.OutOrStdout(), n, rec)
				}
				return nil
			})
		}}
	revoke.Flags().BoolVar(&revokeCA, "ca", false, "confirm revoking a CA (intermediate) certificate")
	revoke.Flags().StringVar(&reason, "reason", "unspecified", "RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, affiliationChanged, … or its code")
	revoke.Flags().StringVar(&invalidity, "invalidity-date", "", "when the key was known or suspected compromised (RFC 3339)")
	cmd.AddCommand(list, show, revoke)
	cmd.AddCommand(blockKeyCommands(g)...)
	cmd.AddCommand(revokeAllCommand(g))
	return cmd
}

// listCAsWithKey names the valid CA certificates that carry rec's key: a
// blocked key leaves CA certificates valid (RevokeBlockedKeys), so each
// needs its own revocation.
func listCAsWithKey(ctx context.Context, out io.Writer, n *node, rec *core.Certificate) error {
	serials, err := n.db.CACertificatesWithKey(ctx, rec.KeyHash)
	if err != nil {
		return err
	}
	var others []string
	for _, s := range serials {
		if s != rec.Serial {
			others = append(others, string(s))
		}
	}
	if len(others) > 0 {
		fmt.Fprintf(out, "CA certificates with the same key stay valid until each is revoked (ca cert revoke SERIAL --ca --reason keyCompromise): %s\n",
			strings.Join(others, ", "))
	}
	return nil
}

// revokeRequest is the control socket's POST /revoke body.
type revokeRequest struct {
	Serial     core.Serial           `json:"serial"`
	Reason     core.RevocationReason `json:"reason"`
	Invalidity time.Time             `json:"invalidity_date,omitzero"`
}

func parseRevokeRequest(serial, reason, invalidity string) (revokeRequest, error) {
	s, err := core.ParseSerial(serial)
	if err != nil {
		return revokeRequest{}, err
	}
	r, err := parseRevokeReason(reason, invalidity)
	r.Serial = s
	return r, err
}

// parseRevokeReason reads --reason (a name or code) and --invalidity-date.
func parseRevokeReason(reason, invalidity string) (revokeRequest, error) {
	var r revokeRequest
	var err error
	if n, cerr := strconv.Atoi(reason); cerr == nil {
		r.Reason, err = core.ReasonFromCode(n)
	} else {
		r.Reason, err = core.ParseReason(reason)
	}
	if err != nil {
		return r, err
	}
	if invalidity != "" {
		if r.Invalidity, err = time.Parse(time.RFC3339, invalidity); err != nil {
			return r, fmt.Errorf("--invalidity-date %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", invalidity)
		}
		// Checked here too: a revocation recorded with no server running
		// goes to the database directly.
		if err := ca.CheckInvalidityDate(r.Invalidity, time.Now()); err != nil {
			return r, fmt.Errorf("--invalidity-date: %s", core.DetailOf(err))
		}
	}
	return r, nil
}

func revokeThroughControl(ctx context.Context, client *http.Client, req revokeRequest) error {
	return postControl(ctx, client, "/revoke", req, nil)
}

// postControl POSTs req as JSON to a running server's control socket and
// decodes its answer into res (nil: none); a refusal is the server's text.
func postControl(ctx context.Context, client *http.Client, path string, req, res any) error {
	return callControl(ctx, client, "POST", path, req, res)
}

// callControl sends req (JSON) to the running server's control socket and
// decodes its answer into res (nil: none expected).
func callControl(ctx context.Context, client *http.Client, method, path string, req, res any) error {
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, method, "http://control"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(hr)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return errors.New(strings.TrimSpace(string(msg)))
	}
	if res == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(res)
}

// recordOffline records a revocation in the database: an operator's
// keyCompromise blocks the key, as through the running server.
func recordOffline(ctx context.Context, n *node, req revokeRequest) error {
	if req.Reason == core.ReasonKeyCompromise {
		return n.db.RevokeAndBlockKey(ctx, req.Serial, time.Now().UTC(), req.Invalidity)
	}
	return n.db.RevokeCertificate(ctx, req.Serial, req.Reason, time.Now().UTC(), req.Invalidity)
}

// revokeOffline records the revocation with no server running on this
// data directory and tells the other nodes, if any, through the event bus.
func revokeOffline(ctx context.Context, out io.Writer, n *node, req revokeRequest) error {
	if err := recordOffline(ctx, n, req); err != nil {
		return err
	}
	rec, err := n.db.GetCertificate(ctx, req.Serial)
	if err != nil {
		return err
	}
	sh, err := newShared(ctx, n.cfg, n)
	if err != nil {
		return fmt.Errorf("revoked %s, but the other nodes could not be told: %w", req.Serial, err)
	}
	defer sh.close()
	if err := sh.events.Publish(ctx, storage.TopicRevoked, storage.EncodeRevoked(rec.IssuerID, req.Serial)); err != nil {
		return fmt.Errorf("revoked %s, but the other nodes could not be told: %w", req.Serial, err)
	}
	fmt.Fprintf(out, "revoked %s (%s); no server runs on this data directory: its CRLs follow when it starts", req.Serial, req.Reason)
	if req.Reason == core.ReasonKeyCompromise {
		// Its key is blocked now; the other certificates with it go too.
		same, err := revokeBlockedOffline(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "; its key is blocked, and %d other certificate(s) with it were revoked", same)
	}
	if n.cfg.Redis.Addr != "" {
		fmt.Fprint(out, ", other nodes were told through Redis")
	}
	fmt.Fprintln(out)
	return nil
}
