package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
)

func hsmCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "hsm", Short: "Administer the embedded HSM (status, users, keys, audit, seal, unseal)"}
	cmd.AddCommand(hsmStatusCommand(g), hsmUsersCommand(g), hsmKeysCommand(g), hsmAuditCommand(g),
		hsmUnsealCommand(g), hsmSealCommand(g), hsmBackupCommand(g), hsmRestoreCommand(g), hsmRekeyCommand(g))
	return cmd
}

// withNode opens the data directory's node for a CLI command.
func withNode(cmd *cobra.Command, g *globals, fn func(ctx context.Context, n *node) error) error {
	ctx := cmd.Context()
	n, err := openNode(ctx, g.dataDir, io.Discard, false)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	warnLooseSecrets(n, cmd.ErrOrStderr())
	return fn(ctx, n)
}

// unsealForCLI unseals from the environment, or asks for shares or the
// passphrase on stdin.
func unsealForCLI(ctx context.Context, cmd *cobra.Command, n *node) error {
	in, err := unsealMaterial(cmd, n)
	if err != nil {
		return err
	}
	return n.hsm.Unseal(ctx, in)
}

// officerSession logs in as an officer: name from --officer (default
// "officer"), PIN from STRONGROOM_OFFICER_PIN or DIR/officer.pin, else
// typed on stdin.
func officerSession(ctx context.Context, cmd *cobra.Command, n *node, name string) (*hsm.Session, error) {
	pin, login, from := os.Getenv(config.EnvOfficerPIN), n.hsm.Login, config.EnvOfficerPIN
	if pin == "" {
		file := filepath.Join(n.dir, "officer.pin")
		if b, err := os.ReadFile(file); err == nil {
			// A PIN kept in a file is a stored PIN: a stale one is not
			// tried on the officer's last login before it locks, as
			// ca.pin is not (found by a review: six commands with an old
			// officer.pin locked the officer).
			pin, login, from = strings.TrimSpace(string(b)), n.hsm.LoginStored, file
		} else if pin, from = promptLine(cmd, "PIN of officer "+name), "stdin"; pin == "" {
			return nil, fmt.Errorf("no officer PIN: set %s, keep it in officer.pin, or type it on stdin", config.EnvOfficerPIN)
		}
	}
	s, err := login(ctx, name, pin)
	if errors.Is(err, hsm.ErrBadPIN) || errors.Is(err, hsm.ErrPINFinalTry) {
		// The one case where no officer can list or unlock users: say
		// how out of it.
		return nil, fmt.Errorf("officer %s (PIN from %s): %w (a locked officer: `ca hsm users unlock %s --with-unseal`, on the authority of the unseal material)", name, from, err, name)
	}
	return s, err
}

// withOfficer unseals the node's HSM as other commands do, logs in as
// officer (officerSession) and runs fn in that session.
func withOfficer(cmd *cobra.Command, g *globals, officer string, fn func(context.Context, *node, *hsm.Session) error) error {
	return withNode(cmd, g, func(ctx context.Context, n *node) error {
		if err := unsealForCLI(ctx, cmd, n); err != nil {
			return err
		}
		s, err := officerSession(ctx, cmd, n, officer)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(ctx, n, s)
	})
}

func hsmStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Show whether the HSM is initialised, its unseal method, self-tests, users and keys",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				unsealErr := unsealForCLI(ctx, cmd, n)
				st, err := n.hsm.Status(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				// This command opens its own module; a running server's
				// may be sealed while this one is not.
				var running *controlStatus
				if client, ok := controlClient(g.dataDir); ok {
					var res controlStatus
					if err := callControl(ctx, client, "GET", "/status", nil, &res); err != nil {
						return fmt.Errorf("asking the running server: %w", err)
					}
					running = &res
					fmt.Fprintf(w, "running server: sealed: %v, self-test: %s\n", res.Sealed, res.SelfTest)
					fmt.Fprintln(w, "this command's own check of the keystore (unsealed here to check the material):")
				}
				fmt.Fprintf(w, "initialized: %v\nunseal method: %s\nsealed: %v\nself-test: %s\nusers: %d\nkeys: %d\n",
					st.Initialized, st.Method, st.Sealed, st.SelfTest, st.Users, st.Keys)
				if st.Failure != "" {
					fmt.Fprintf(w, "failure: %s\n", st.Failure)
				}
				if unsealErr != nil {
					return fmt.Errorf("the HSM could not be unsealed: %w", unsealErr)
				}
				damaged, err := n.hsm.CheckObjects(ctx)
				if err != nil {
					return err
				}
				printDamaged(w, damaged)
				missingUsers, err := n.hsm.MissingUsers(ctx)
				if err != nil {
					return err
				}
				printMissingUsers(w, missingUsers)
				// A key's history is read from the audit log: an entry about
				// it deleted or moved shows only in the chain.
				rep, err := n.hsm.VerifyAudit(ctx)
				if err != nil {
					return err
				}
				if rep.FirstBad != 0 {
					fmt.Fprintf(w, "audit log: ALTERED at entry #%d: %s (details: ca hsm audit verify)\n", rep.FirstBad, shownText(rep.Problem))
				} else {
					fmt.Fprintf(w, "audit log: %d entries, intact\n", rep.Entries)
				}
				tokenErr := checkTokenKeys(ctx, n, w, running)
				if sealed, other := rep.UnauthBySource(); other > 0 || sealed > 0 {
					if other > 0 {
						fmt.Fprintf(w, "audit log: %d entries without a MAC after authentication began (nodes of the previous release during an upgrade, or written outside the HSM; they must not grow once every node runs this release; listed by ca hsm audit verify)\n", other)
					}
					if sealed > 0 {
						fmt.Fprintf(w, "audit log: %d failed unseals or self-tests recorded while sealed, when no MAC can be made (listed by ca hsm audit verify)\n", sealed)
					}
				}
				// Every problem found, not only the first (a review saw
				// missing users left out beside a damaged key).
				var problems []string
				if len(damaged) > 0 {
					problems = append(problems, fmt.Sprintf("%d damaged objects: restore them from a backup, or destroy them (`ca hsm keys destroy-damaged ID`)", len(damaged)))
				}
				if tokenErr != nil {
					problems = append(problems, fmt.Sprintf("the CA keys on the PKCS#11 token: %v", tokenErr))
				}
				if len(missingUsers) > 0 {
					problems = append(problems, fmt.Sprintf("%d users deleted outside the HSM: re-create them on the authority of the unseal material (`ca hsm users reset NAME --role ROLE`)", len(missingUsers)))
				}
				if rep.FirstBad != 0 {
					problems = append(problems, fmt.Sprintf("the HSM audit log was altered outside the HSM at entry #%d: the keys' histories it records cannot be trusted", rep.FirstBad))
				}
				if len(problems) > 0 {
					return errors.New(strings.Join(problems, "; "))
				}
				return nil
			})
		}}
}

// printDamaged lists damaged key objects: id, the label and owner their row
// names (not authenticated), and why they fail to open; and missing ones,
// with the label and creator their authenticated creation entry names.
func printDamaged(w io.Writer, damaged []hsm.DamagedKey) {
	if len(damaged) == 0 {
		return
	}
	fmt.Fprintf(w, "damaged objects: %d\n", len(damaged))
	for _, d := range damaged {
		what := "DAMAGED"
		if d.Missing {
			what = "MISSING"
		}
		fmt.Fprintf(w, "  %s %s label=%q owner=%q: %s\n", what, shown(d.ID), d.Label, d.Owner, shownText(d.Reason))
	}
}

// checkTokenKeys is `ca hsm status`'s check of CA keys kept on a PKCS#11
// token (ca.key_store pkcs11), which the embedded module's checks do not
// see: it opens the token and finds every issuer's key, matching its
// certificate, as `ca serve` does at start (a review deleted both CA keys
// from the token and status said all was well). Without the token's PIN
// it says it did not check. A serving node is asked instead, which costs
// the token no login (a monitoring job with a stale PIN would otherwise
// spend the token's PIN tries).
func checkTokenKeys(ctx context.Context, n *node, w io.Writer, running *controlStatus) error {
	if n.cfg.CA.KeyStore != "pkcs11" {
		return nil
	}
	if running != nil && running.CAKeys != "" {
		if running.CAKeys == "ok" {
			fmt.Fprintln(w, "CA keys on the PKCS#11 token: the running server finds and signs with every issuer's key")
			return nil
		}
		fmt.Fprintf(w, "CA keys on the PKCS#11 token: FAILING (the running server): %s\n", shownText(running.CAKeys))
		return errors.New(running.CAKeys)
	}
	if _, err := n.cfg.PKCS11PIN(n.dir); err != nil {
		fmt.Fprintf(w, "CA keys on the PKCS#11 token: not checked (%s)\n", shownText(err.Error()))
		return nil
	}
	// The chain, as `ca serve` loads it (each key matched with its
	// certificate); when it fails, each issuer's key on its own, so that
	// every missing one is named, not only the first.
	var failed []string
	if _, _, err := n.issuers(ctx, nil, nil); err != nil {
		for _, is := range append([]config.Issuer{n.cfg.CA.Root}, n.cfg.CA.Intermediates...) {
			if is.External {
				continue
			}
			if _, err := n.issuerSigner(ctx, nil, is); err != nil {
				failed = append(failed, fmt.Sprintf("issuer %s: %v", is.ID, err))
			}
		}
		if len(failed) == 0 {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		msg := strings.Join(failed, "; ")
		fmt.Fprintf(w, "CA keys on the PKCS#11 token: FAILING: %s\n", shownText(msg))
		return errors.New(msg)
	}
	fmt.Fprintln(w, "CA keys on the PKCS#11 token: every issuer's key found, matching its certificate")
	return nil
}

// printMissingUsers lists users deleted outside the HSM, with the role
// their authenticated creation entry gives.
func printMissingUsers(w io.Writer, missing []hsm.MissingUser) {
	if len(missing) == 0 {
		return
	}
	fmt.Fprintf(w, "missing users: %d\n", len(missing))
	for _, u := range missing {
		note := ""
		if u.UnvouchedDelete != 0 {
			note = fmt.Sprintf("; its only delete, entry #%d, carries no MAC (a node of the previous release, or written outside the HSM)", u.UnvouchedDelete)
		}
		fmt.Fprintf(w, "  MISSING user %s (role %s, made in audit entry #%d): its record was deleted outside the HSM%s\n", shown(u.Name), shown(string(u.Role)), u.Seq, note)
	}
}

func hsmUsersCommand(g *globals) *cobra.Command {
	var officer string
	cmd := &cobra.Command{Use: "users", Short: "Manage HSM users (as the crypto officer: PIN from STRONGROOM_OFFICER_PIN or officer.pin, else typed on stdin; unlock --with-unseal, reset and pin need no officer)"}
	cmd.PersistentFlags().StringVar(&officer, "officer", "officer", "officer user name")
	run := func(fn func(ctx context.Context, s *hsm.Session, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return withOfficer(cmd, g, officer, func(ctx context.Context, _ *node, s *hsm.Session) error { return fn(ctx, s, args) })
		}
	}
	list := &cobra.Command{Use: "list", Short: "List the HSM's users: name, role, whether locked, failed logins in a row; users whose records were altered outside the HSM marked TAMPERED, deleted outside it MISSING", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, args []string) error {
		return run(func(ctx context.Context, s *hsm.Session, _ []string) error {
			users, err := s.ListUsers(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tLOCKED\tFAILED LOGINS")
			tampered, missing := 0, 0
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%s\t%v\t%d", shown(u.Name), shown(string(u.Role)), u.Locked, u.Failures)
				switch {
				case u.Tampered:
					tampered++
					fmt.Fprint(w, "\tTAMPERED: altered outside the HSM; cannot log in")
				case u.Missing:
					missing++
					fmt.Fprint(w, "\tMISSING: deleted outside the HSM; cannot log in")
				}
				fmt.Fprintln(w)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			switch {
			case missing > 0:
				return fmt.Errorf("%d users were deleted outside the HSM: re-create them on the authority of the unseal material (`ca hsm users reset NAME --role ROLE`); they get their keys back", missing)
			case tampered == 1:
				return errors.New("1 user record was altered outside the HSM (it does not verify; the role shown is only what it says): reset it on the authority of the unseal material (`ca hsm users reset NAME --role ROLE`), or delete and re-create the user")
			case tampered > 1:
				return fmt.Errorf("%d user records were altered outside the HSM (they do not verify; the roles shown are only what they say): reset them on the authority of the unseal material (`ca hsm users reset NAME --role ROLE`), or delete and re-create the users", tampered)
			}
			return nil
		})(cmd, args)
	}}
	var role string
	create := &cobra.Command{Use: "create NAME", Short: "Create a user; the PIN is read from STRONGROOM_NEW_PIN or stdin",
		Args: cobra.ExactArgs(1), RunE: run(func(ctx context.Context, s *hsm.Session, args []string) error {
			if r := hsm.Role(role); r != hsm.RoleOfficer && r != hsm.RoleUser && r != hsm.RoleAuditor {
				return fmt.Errorf("--role %q: want officer, user or auditor", role) // before asking for a PIN
			}
			pin, err := newPINInput(cmd, "PIN for the new user")
			if err != nil {
				return err
			}
			if err := s.CreateUser(ctx, args[0], hsm.Role(role), pin); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s created with role %s (audited)\n", args[0], role)
			return nil
		})}
	create.Flags().StringVar(&role, "role", "user", "officer, user or auditor")
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a user who owns no key; its open sessions end (on a running server within seconds)", Args: cobra.ExactArgs(1), RunE: run(func(ctx context.Context, s *hsm.Session, args []string) error {
		if err := s.DeleteUser(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted; its open sessions end (audited)\n", args[0])
		return nil
	})}
	var withUnseal bool
	unlockByOfficer := run(func(ctx context.Context, s *hsm.Session, args []string) error {
		if err := s.UnlockUser(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s: unlocked, failed logins reset, by %s (audited)\n", args[0], officer)
		return nil
	})
	unlock := &cobra.Command{Use: "unlock NAME", Args: cobra.ExactArgs(1),
		Short: "Clear a user's lockout: as the officer, or --with-unseal on the authority of the unseal material (when no officer can log in)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if withUnseal {
				return unlockWithUnseal(cmd, g, args[0])
			}
			return unlockByOfficer(cmd, args)
		}}
	unlock.Flags().BoolVar(&withUnseal, "with-unseal", false, "unlock with the unseal material (key file, passphrase, shares or token) instead of an officer login")
	cmd.AddCommand(list, create, del, unlock, hsmPINCommand(g, &officer), hsmResetCommand(g))
	return cmd
}

func hsmKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List the keys the CA's crypto user can see"}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List the keys the CA's crypto user can see: id, label, type, version, owner, uses; damaged ones named", Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
		return withNode(cmd, g, func(ctx context.Context, n *node) error {
			if err := unsealForCLI(ctx, cmd, n); err != nil {
				return err
			}
			s, err := n.caSession(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			keys, err := s.ListKeys(ctx)
			if err != nil {
				return err
			}
			damaged, err := s.DamagedKeys(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tLABEL\tTYPE\tVERSION\tEXTRACTABLE\tOWNER\tUSES\tCREATED")
			for _, k := range keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%v\t%s\t%d\t%s\n", k.ID, cell(k.Label), k.Type, k.Version, k.Extractable,
					k.Owner, k.Uses, k.Created.Format("2006-01-02T15:04:05Z"))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			printDamaged(cmd.OutOrStdout(), damaged)
			if len(damaged) > 0 {
				return fmt.Errorf("%d damaged keys", len(damaged))
			}
			return nil
		})
	}})
	cmd.AddCommand(hsmDestroyDamagedCommand(g))
	return cmd
}

// isCAKey reports whether a key created as c is a CA signing key in the
// embedded HSM: made by the CA's user under one of the configured key
// labels.
func isCAKey(n *node, c hsm.Creation) bool {
	if n.cfg.CA.KeyStore == "pkcs11" || c.By != n.cfg.HSM.User {
		return false
	}
	for _, is := range append([]config.Issuer{n.cfg.CA.Root}, n.cfg.CA.Intermediates...) {
		if c.Label == is.KeyLabel && !is.External {
			return true
		}
	}
	return false
}

// hsmDestroyDamagedCommand destroys a key `ca hsm status` lists as damaged,
// as the officer. A CA key is refused: it signs certificates, and its rows
// may yet be repaired from a database backup, or the keystore restored.
func hsmDestroyDamagedCommand(g *globals) *cobra.Command {
	officer, force := "officer", false
	c := &cobra.Command{Use: "destroy-damaged ID", Args: cobra.ExactArgs(1),
		Short: "Destroy a key listed as damaged (it opens for nobody, so its owner cannot), as the officer (PIN from STRONGROOM_OFFICER_PIN); audited",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withOfficer(cmd, g, officer, func(ctx context.Context, n *node, s *hsm.Session) error {
				d, err := s.DestroyDamaged(ctx, args[0], func(d hsm.DamagedKey) error {
					switch {
					case !d.Created.Verified && !force:
						return fmt.Errorf("key %s: no authenticated audit entry says what it is (made before the log was authenticated, or the entry altered), so it cannot be told from a CA key; restore it, or add --force if you know it is not one", d.ID)
					case d.Created.Verified && isCAKey(n, d.Created):
						return fmt.Errorf("key %s is the CA key %s: restore it (the rows from a database backup, or the keystore with `ca hsm restore`) instead of destroying it", d.ID, shown(d.Created.Label))
					}
					return nil
				})
				if err != nil {
					return err
				}
				what := fmt.Sprintf("label %s, made by %s", shown(d.Created.Label), shown(d.Created.By))
				if !d.Created.Verified {
					what = fmt.Sprintf("its row says label %s, owner %s", shown(d.Label), shown(d.Owner))
				}
				if d.Missing {
					fmt.Fprintf(cmd.OutOrStdout(), "missing key %s (%s) recorded as destroyed by %s (audited)\n", d.ID, what, officer)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "damaged key %s (%s) destroyed by %s (audited); running nodes drop it within seconds\n", d.ID, what, officer)
				return nil
			})
		}}
	c.Flags().StringVar(&officer, "officer", officer, "the officer who destroys it")
	c.Flags().BoolVar(&force, "force", false, "destroy a key whose creation the authenticated audit log does not record (you know it is not a CA key)")
	return c
}

func hsmAuditCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the HSM's hash-chained audit log"}
	cmd.AddCommand(&cobra.Command{Use: "verify", Short: "Check the hash chain and, unsealed, the head's MAC; names the first bad entry",
		Long: `verify checks every entry's hash chain and, with the HSM unsealed here (as
other commands unseal it), the MAC under the master key that authenticates
the chain's head. It prints the head's seq and hash: record them outside the
database (a ticket, a log server), because a rollback of the whole database
to an older copy carries an older, valid MAC and is only detected against
such a record.`,
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				unsealErr := unsealForCLI(ctx, cmd, n)
				rep, err := n.hsm.VerifyAudit(ctx)
				if err != nil {
					return err
				}
				if rep.FirstBad != 0 {
					if unsealErr != nil { // e.g. audit_auth_from edited: the KEK no longer opens
						return fmt.Errorf("audit log is NOT intact: first bad entry is #%d: %s (%d entries read; the HSM did not unseal here: %v)", rep.FirstBad, rep.Problem, rep.Entries, unsealErr)
					}
					return fmt.Errorf("audit log is NOT intact: first bad entry is #%d: %s (%d entries read)", rep.FirstBad, rep.Problem, rep.Entries)
				}
				printAuditReport(cmd.OutOrStdout(), rep)
				if unsealErr != nil {
					// Without the unseal, nothing vouches for the MACs or for
					// where authentication began: a log stripped of both,
					// with audit_auth_from deleted, hashes as intact.
					return fmt.Errorf("the hash chain holds, but the audit log's authentication could not be checked: the HSM did not unseal here: %w", unsealErr)
				}
				return nil
			})
		}})
	return cmd
}

func printAuditReport(w io.Writer, rep hsm.AuditReport) {
	fmt.Fprintf(w, "audit log intact: %d entries, hash chain verified\n", rep.Entries)
	fmt.Fprintf(w, "head: #%d %x (record it outside the database: only that shows a rollback of the whole database)\n", rep.HeadSeq, rep.HeadHash)
	fmt.Fprintf(w, "authenticated: %s\n", rep.AuthSummary())
	if u := rep.UnauthSummary(); u != "" {
		fmt.Fprintf(w, "not authenticated: %s\n", u)
	}
}

func hsmUnsealCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "unseal", Short: "Unseal the HSM of the running ca serve (shares or passphrase on stdin); without a running server, check the material",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			if client, ok := controlClient(g.dataDir); ok {
				return unsealThroughControl(cmd.Context(), cmd, g, client)
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "no running server in this data directory; the unseal material is correct and self-tests passed")
				return nil
			})
		}}
}

// unsealThroughControl asks the running server to unseal. The first
// request carries no material: a server already unsealed says so, and no
// share or passphrase is read for nothing; only when the server asks for
// material is it read and sent, as the server's unseal method (which it
// names) wants. It opens no database: a share holder needs the socket and
// a share, not the database's credentials (found by a review).
func unsealThroughControl(ctx context.Context, cmd *cobra.Command, g *globals, client *http.Client) error {
	var res controlStatus
	if err := postControl(ctx, client, "/unseal", unsealRequest{}, &res); err != nil {
		return err
	}
	if res.NeedsMaterial {
		method := string(res.Method)
		if method == "" { // a server of the previous release does not name it
			cfg, err := config.Load(g.dataDir)
			if err != nil {
				return err
			}
			method = cfg.HSM.Unseal
		}
		req, err := readUnsealMaterial(cmd, method)
		if err != nil {
			return err
		}
		if req.Passphrase == "" && len(req.Shares) == 0 {
			// Nothing typed: posted, it would read as "no material" and
			// leave the server sealed with exit 0 (found by a review).
			return fmt.Errorf("no unseal material given on stdin (the server unseals with %s): the server stays sealed", method)
		}
		res = controlStatus{}
		if err := postControl(ctx, client, "/unseal", req, &res); err != nil {
			return err
		}
	}
	printControlStatus(cmd, res)
	return nil
}

func hsmSealCommand(g *globals) *cobra.Command {
	return &cobra.Command{Use: "seal", Short: "Seal the HSM of the running ca serve: it stops serving and zeroes unsealed material",
		Args: cobra.NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			client, ok := controlClient(g.dataDir)
			if !ok {
				return fmt.Errorf("no running ca serve in %s (no %s)", g.dataDir, controlSocket)
			}
			var res controlStatus
			if err := postControl(cmd.Context(), client, "/seal", nil, &res); err != nil {
				return err
			}
			printControlStatus(cmd, res)
			return nil
		}}
}

// readUnsealMaterial reads the passphrase (or STRONGROOM_HSM_PASSPHRASE) or
// the shares from stdin, for the unseal method named.
func readUnsealMaterial(cmd *cobra.Command, method string) (unsealRequest, error) {
	var req unsealRequest
	r, errw := stdin(cmd), cmd.ErrOrStderr()
	switch method {
	case "passphrase":
		if p := os.Getenv(config.EnvPassphrase); p != "" {
			req.Passphrase = p
			break
		}
		fmt.Fprint(errw, "HSM passphrase: ")
		req.Passphrase, _ = r.secretLine(errw)
	case "shamir":
		fmt.Fprintln(errw, "Enter unseal shares, one per line; an empty line ends:")
		for {
			line, ok := r.secretLine(errw)
			if line = strings.TrimSpace(line); line != "" {
				req.Shares = append(req.Shares, line)
			}
			if line == "" || !ok {
				break
			}
		}
	}
	return req, nil
}

func printControlStatus(cmd *cobra.Command, res controlStatus) {
	if res.Note != "" {
		fmt.Fprintln(cmd.OutOrStdout(), res.Note)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "sealed: %v\nself-test: %s\n", res.Sealed, res.SelfTest)
}

// shown is a name read from the database as a terminal may print it: as
// it is if it is printable and has no space, else quoted with its escapes
// (someone who can write the database can put escape sequences or a
// newline in a user name, to redraw the screen or forge a line of output).
func shown(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return r == ' ' || !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// shownText is shown for a message, which may hold spaces.
func shownText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
