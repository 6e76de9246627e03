package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/strongroom-pki/strongroom/config"
	"github.com/strongroom-pki/strongroom/hsm"
)

// input is the command's standard input as one buffered reader that every
// prompt of the command shares: a reader per prompt would swallow the
// lines meant for the next one (shares piped before a PIN). tty is set when
// stdin is a terminal: secrets are then read without echo.
type input struct {
	*bufio.Reader
	tty *os.File
}

func stdin(cmd *cobra.Command) *input {
	// Kept on the root: a command's closures may hold its parent (the
	// users group's do), and a second reader would find what the first
	// one buffered gone (found by a review: a new user's PIN piped after
	// the officer's was lost).
	root := cmd.Root()
	if in, ok := root.InOrStdin().(*input); ok {
		return in
	}
	raw := root.InOrStdin()
	in := &input{Reader: bufio.NewReader(raw)}
	if f, ok := raw.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		in.tty = f
	}
	root.SetIn(in)
	return in
}

// secretLine reads one line, without echo on a terminal, trailing CR/LF
// removed; ok is false at the end of the input.
func (in *input) secretLine(w io.Writer) (line string, ok bool) {
	if in.tty != nil {
		b, err := term.ReadPassword(int(in.tty.Fd()))
		fmt.Fprintln(w)
		return string(b), err == nil
	}
	line, err := in.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err == nil || line != ""
}

// promptLine asks on stderr and reads one secret line from stdin (no echo
// on a terminal), spaces trimmed as PIN files are read.
func promptLine(cmd *cobra.Command, question string) string {
	return strings.TrimSpace(promptPassphrase(cmd, question))
}

// promptPassphrase is promptLine without the trimming: a passphrase is
// read as unseal reads it (only the line end taken off), so spaces typed
// around it are part of it everywhere.
func promptPassphrase(cmd *cobra.Command, question string) string {
	fmt.Fprint(cmd.ErrOrStderr(), question+": ")
	line, _ := stdin(cmd).secretLine(cmd.ErrOrStderr())
	return line
}

// secretFrom is a secret a command reads from the environment variable
// env, else asks for on stdin (no echo on a terminal); "" if none given.
// Typed, it stays out of the shell's history and the process list.
func secretFrom(cmd *cobra.Command, env, question string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return promptPassphrase(cmd, question)
}

// newSecretFrom is a new secret (what: "new HSM passphrase", "backup
// passphrase") from env, else typed twice on stdin: one mistyped would
// leave something nobody can open.
func newSecretFrom(cmd *cobra.Command, env, what string) (string, error) {
	if v := os.Getenv(env); v != "" {
		return v, nil
	}
	question := strings.ToUpper(what[:1]) + what[1:]
	p := promptPassphrase(cmd, question)
	if p == "" {
		return "", fmt.Errorf("no %s: set %s or type it on stdin", what, env)
	}
	if again := promptPassphrase(cmd, question+" again"); again != p {
		return "", fmt.Errorf("the two %ss differ", what)
	}
	return p, nil
}

// pinSource is where the CLI and the server find a user's PIN: an
// environment variable, else (in development) a 0600 file in the data
// directory. Users of no component have neither: their PIN is typed.
type pinSource struct{ env, file string }

func pinSourceOf(n *node, name, officer string) pinSource {
	switch name {
	case n.cfg.HSM.User:
		return pinSource{config.EnvHSMPIN, config.Path(n.dir, n.cfg.HSM.PINFile)}
	case n.cfg.HSM.AppsUser:
		return pinSource{config.EnvAppsPIN, config.Path(n.dir, n.cfg.HSM.AppsPINFile)}
	case officer:
		return pinSource{config.EnvOfficerPIN, filepath.Join(n.dir, "officer.pin")}
	}
	return pinSource{}
}

// read returns the PIN and whether it came from the file.
func (p pinSource) read(cmd *cobra.Command, question string) (pin string, fromFile bool, err error) {
	if p.env != "" {
		if v := os.Getenv(p.env); v != "" {
			return v, false, nil
		}
	}
	if p.file != "" {
		b, err := os.ReadFile(p.file)
		if err == nil {
			return strings.TrimSpace(string(b)), true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, err
		}
	}
	return promptLine(cmd, question), false, nil
}

func hsmPINCommand(g *globals, officer *string) *cobra.Command {
	return &cobra.Command{Use: "pin NAME", Args: cobra.ExactArgs(1),
		Short: "Change a user's PIN: the old one from the user's PIN variable or file (else stdin), the new one from STRONGROOM_NEW_PIN (else stdin)",
		Long: `pin changes NAME's PIN. The old PIN comes from the variable or file the
server uses for that user (STRONGROOM_HSM_PIN or ca.pin for the CA's user,
STRONGROOM_APPS_PIN or apps.pin for the key service's, STRONGROOM_OFFICER_PIN
or officer.pin for the officer), else from stdin; a wrong old PIN counts as
a failed login. The new PIN comes from STRONGROOM_NEW_PIN, else from stdin.
When the old PIN came from a file, the new one is written to that file.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				if err := unsealForCLI(ctx, cmd, n); err != nil {
					return err
				}
				src := pinSourceOf(n, name, *officer)
				oldPIN, fromFile, err := src.read(cmd, "Current PIN of "+name)
				if err != nil {
					return err
				}
				newPIN, err := newPINInput(cmd, "New PIN of "+name)
				if err != nil {
					return err
				}
				s, err := n.hsm.Login(ctx, name, oldPIN) // counted and audited like any login
				if err != nil {
					return err
				}
				defer s.Close()
				// The new PIN goes beside the file first, as a rekey's key
				// does: a crash between the change and the file's update
				// leaves it there, named by the next failed login (found
				// by a review), not only in the operator's head.
				pending := src.file + ".new"
				if fromFile {
					if err := writeFileAtomic(pending, []byte(newPIN+"\n"), 0o600); err != nil {
						return fmt.Errorf("nothing changed: %w", err)
					}
				}
				if err := s.ChangePIN(ctx, oldPIN, newPIN); err != nil {
					if fromFile {
						os.Remove(pending)
					}
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "PIN of %s changed\n", name)
				switch {
				case fromFile:
					if err := movePINFile(pending, src.file); err != nil {
						return fmt.Errorf("the PIN is changed in the HSM but %s could not be updated (%s holds the new PIN): %w", src.file, pending, err)
					}
					fmt.Fprintf(out, "%s now holds the new PIN\n", src.file)
				case src.env != "" && os.Getenv(src.env) != "":
					fmt.Fprintf(out, "set %s to the new PIN wherever the server gets it, or its next login fails\n", src.env)
				}
				return nil
			})
		}}
}

// movePINFile moves the PIN file written at pending over path (the file a
// symlink there points to): the file is replaced whole, with pending's
// mode (0600), whatever mode the old one had.
func movePINFile(pending, path string) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	return os.Rename(pending, target)
}

// unlockWithUnseal is `ca hsm users unlock NAME --with-unseal`: the unseal
// holders' recovery when no officer can log in.
func unlockWithUnseal(cmd *cobra.Command, g *globals, name string) error {
	return withNode(cmd, g, func(ctx context.Context, n *node) error {
		in, err := unsealMaterial(cmd, n)
		if err != nil {
			return err
		}
		if err := n.hsm.UnlockWithUnseal(ctx, name, in); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s unlocked on the authority of the unseal material (audited)\n", name)
		return nil
	})
}

// hsmResetCommand is `ca hsm users reset NAME --role ROLE`: the unseal
// holders give a user a new PIN and vouch for its role, with no login (a
// record altered outside the HSM, of a user that owns keys), or re-create a
// user whose record was deleted outside the HSM.
func hsmResetCommand(g *globals) *cobra.Command {
	var role string
	cmd := &cobra.Command{Use: "reset NAME --role ROLE",
		Short: "Give a user a new PIN and the role named, clear its lockout, on the authority of the unseal material (a record altered outside the HSM; the user keeps its keys), or re-create a user `ca hsm status` lists as MISSING. New PIN from STRONGROOM_NEW_PIN or stdin",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if r := hsm.Role(role); r != hsm.RoleOfficer && r != hsm.RoleUser && r != hsm.RoleAuditor {
				return fmt.Errorf("--role %q: want officer, user or auditor (the role the unseal holders vouch for)", role) // before asking for anything
			}
			return withNode(cmd, g, func(ctx context.Context, n *node) error {
				in, err := unsealMaterial(cmd, n)
				if err != nil {
					return err
				}
				pin, err := newPINInput(cmd, "New PIN of "+args[0])
				if err != nil {
					return err
				}
				was, recreated, err := n.hsm.ResetWithUnseal(ctx, args[0], hsm.Role(role), pin, in)
				if err != nil {
					return err
				}
				if recreated {
					if was != hsm.Role(role) {
						fmt.Fprintf(cmd.OutOrStdout(), "note: the audit log made it %s; the unseal holders make it %s\n", withArticle(string(was)), withArticle(role))
					}
					fmt.Fprintf(cmd.OutOrStdout(), "user %s was missing (its row deleted outside the HSM; the audit log made it %s): re-created with role %s, its keys, and a new PIN on the authority of the unseal material (audited); set the new PIN wherever that user's PIN is read\n", args[0], withArticle(string(was)), role)
					return nil
				}
				if was != hsm.Role(role) {
					fmt.Fprintf(cmd.OutOrStdout(), "note: its record stated role %s; it is %s now (a user's open sessions end when its role changes)\n", was, role)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s reset with role %s and a new PIN on the authority of the unseal material (audited); set the new PIN wherever that user's PIN is read\n", args[0], role)
				return nil
			})
		}}
	cmd.Flags().StringVar(&role, "role", "", "the user's role, vouched for by the unseal holders: officer, user or auditor (required)")
	return cmd
}

// unsealMaterial gathers the node's unseal material without unsealing, as
// `ca hsm unseal` gets it: the configured key file or token, else the
// passphrase or shares from the environment or stdin.
func unsealMaterial(cmd *cobra.Command, n *node) (hsm.UnsealInput, error) {
	in, err := n.environmentMaterial(cmd.Context())
	if !errors.Is(err, errNeedsOperator) {
		return in, err
	}
	req, err := readUnsealMaterial(cmd, n.cfg.HSM.Unseal)
	return hsm.UnsealInput{Passphrase: []byte(req.Passphrase), Shares: req.Shares}, err
}

// newPINInput is the new PIN a command sets: STRONGROOM_NEW_PIN, else
// asked for on stdin with prompt. None at all is an error that says where
// it is read from (a PIN policy error would not).
func newPINInput(cmd *cobra.Command, prompt string) (string, error) {
	if pin := os.Getenv("STRONGROOM_NEW_PIN"); pin != "" {
		return pin, nil
	}
	if pin := promptLine(cmd, prompt); pin != "" {
		return pin, nil
	}
	return "", errors.New("no new PIN given: set STRONGROOM_NEW_PIN or type it on stdin")
}

// withArticle is a role with its indefinite article: "a user", "an officer".
func withArticle(role string) string {
	if role != "" && strings.ContainsRune("aeiou", rune(role[0])) {
		return "an " + role
	}
	return "a " + role
}
