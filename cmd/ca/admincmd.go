package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/acme"
	"github.com/strongroom-pki/strongroom/api"
	"github.com/strongroom-pki/strongroom/ca"
	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/core"
)

func apikeyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Create, list and revoke REST API keys (stored only as hashes)"}
	var name, scopes, names, profiles, expires string
	create := &cobra.Command{Use: "create", Short: "Create a key; its secret is printed once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ttl time.Duration
			if expires != "" {
				var err error
				if ttl, err = api.ParseKeyExpiry("--expires", expires); err != nil {
					return err
				}
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				known, err := configuredProfiles(n.cfg)
				if err != nil {
					return err
				}
				secret, id, err := api.CreateKeyWith(ctx, n.db, api.KeySpec{Name: name, Scopes: strings.Split(scopes, ","),
					Names: splitList(names), Profiles: splitList(profiles), KnownProfiles: known, TTL: ttl})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "id:     %s\nsecret: %s\n(shown once; send it as \"Authorization: Bearer <secret>\")\n", id, secret)
				return nil
			})
		}}
	create.Flags().StringVar(&name, "name", "", "what the key is for")
	create.Flags().StringVar(&scopes, "scopes", "issue,read", "comma-separated: issue, revoke, read, admin, keys (the key service), metrics (GET /metrics only)")
	create.Flags().StringVar(&names, "names", "", "limit the key's certificates to these DNS suffixes, IP ranges, URI prefixes and @email domains, comma-separated (team-a.corp.internal,10.20.0.0/16,spiffe://corp.internal/ns/team-a,@team-a.corp.internal); it revokes only such certificates")
	create.Flags().StringVar(&profiles, "profiles", "", "limit the key to these profiles, comma-separated")
	create.Flags().StringVar(&expires, "expires", "", "the key stops working after this long (e.g. 90d or 720h); default: when revoked")
	list := &cobra.Command{Use: "list", Short: "List the API keys (never their secrets): scopes, limits, created, expires, revoked", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		return withNode(cmd, g, func(ctx context.Context, n *node) error {
			keys, err := api.ListKeys(ctx, n.db)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tSCOPES\tNAMES\tPROFILES\tCREATED\tEXPIRES\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, cell(k.Name), strings.Join(k.Scopes, ","), orDash(strings.Join(k.Names, ",")),
					orDash(strings.Join(k.Profiles, ",")), stamp(k.CreatedAt), stamp(k.ExpiresAt), stamp(k.RevokedAt))
			}
			return w.Flush()
		})
	}}
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke an API key (by its id, or by its secret if that is what was found leaked; - reads it from stdin, off the command line): it stops working at once, its console sessions end", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		ref := args[0]
		if ref == "-" {
			line, _ := stdin(cmd).secretLine(cmd.ErrOrStderr())
			if ref = strings.TrimSpace(line); ref == "" {
				return errors.New("nothing on stdin: give the key's id or secret there")
			}
		}
		return withNode(cmd, g, func(ctx context.Context, n *node) error {
			id, err := api.KeyIDOf(ctx, n.db, ref)
			if err != nil {
				return err
			}
			if err := api.RevokeKey(ctx, n.db, id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "API key %s revoked; if it leaked, review what it was used to issue: ca cert revoke-all --requester apikey:%s\n", id, id)
			return nil
		})
	}}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func acmeCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "acme", Short: "Administer ACME endpoints"}
	eab := &cobra.Command{Use: "eab", Short: "External Account Binding keys (the HMAC key lives in the HSM)"}
	var endpoint, eabNames string
	eab.PersistentFlags().StringVar(&endpoint, "endpoint", "default", "ACME endpoint the key binds accounts to")
	withCA := func(cmd *cobra.Command, fn func(ctx context.Context, n *node, keys *eabKeys) error) error {
		return withNode(cmd, g, func(ctx context.Context, n *node) error {
			if err := checkEndpoint(n.cfg, endpoint); err != nil {
				return err
			}
			if err := unsealForCLI(ctx, cmd, n); err != nil {
				return err
			}
			s, err := n.caSession(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			return fn(ctx, n, &eabKeys{sess: s})
		})
	}
	create := &cobra.Command{Use: "create", Short: "Create an EAB key; the HMAC key is printed once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCA(cmd, func(ctx context.Context, n *node, keys *eabKeys) error {
				kid, hmacKey, err := acme.CreateEAB(ctx, n.db, keys, endpoint, splitList(eabNames), time.Now())
				if err != nil {
					return err
				}
				// The hint keeps the key off command lines, where any local
				// user reads it in the process list (found by a review).
				fmt.Fprintf(cmd.OutOrStdout(), "endpoint: %s\nkid:      %s\nhmac key: %s\n(shown once; certbot reads eab-kid = %s and eab-hmac-key = … from its cli.ini,\n"+
					"which keeps the key out of the process list that --eab-hmac-key on its command line puts it in)\n",
					endpoint, kid, hmacKey, kid)
				return nil
			})
		}}
	create.Flags().StringVar(&eabNames, "names", "", "limit the bound account's orders to these DNS suffixes and IP ranges, comma-separated (team-a.corp.internal,10.20.0.0/16)")
	revoke := &cobra.Command{Use: "revoke KID", Short: "Revoke an EAB key: it binds no new account (accounts bound with it stay valid)", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
		return withCA(cmd, func(ctx context.Context, n *node, keys *eabKeys) error {
			if err := acme.RevokeEAB(ctx, n.db, keys, endpoint, args[0], time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "EAB key %s revoked: it binds no new account; accounts bound with it stay valid\n", args[0])
			return nil
		})
	}}
	list := &cobra.Command{Use: "list", Short: "List the endpoint's EAB key ids (never the keys): bound account, names, created, revoked",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := checkEndpoint(n.cfg, endpoint); err != nil {
					return err
				}
				keys, err := n.db.ACMEEABKeys(ctx, endpoint)
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "KID\tACCOUNT\tNAMES\tCREATED\tREVOKED")
				for _, k := range keys {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.KID, orDash(k.AccountID), orDash(strings.Join(k.Names, ",")),
						stamp(k.CreatedAt), stamp(k.RevokedAt))
				}
				return w.Flush()
			})
		}}
	eab.AddCommand(create, revoke, list)
	cmd.AddCommand(eab)
	return cmd
}

// cell is text stored by someone else (a key's name, a label) as a table
// cell: quoted, escapes and all, when it holds what a terminal would act on
// or hide (names made before names were checked, labels over REST).
func cell(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, core.Invisible) {
		return strconv.QuoteToASCII(s)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stamp is a table cell for a time: RFC 3339, or "-" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// splitList splits a comma-separated flag value; empty is none.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// configuredProfiles lists the profiles ca serve would have with cfg.
func configuredProfiles(cfg *config.Config) ([]string, error) {
	var profiles []ca.Profile
	if err := cfg.Profiles.Decode("profiles", &profiles); err != nil {
		return nil, err
	}
	return ca.ProfileNames(profiles)
}
