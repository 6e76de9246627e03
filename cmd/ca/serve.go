package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/strongroom-pki/strongroom/config"
)

func serveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the CA (a fresh data directory is initialised with development defaults)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), g.dataDir, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func serve(ctx context.Context, dir string, out, logOut io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, config.FileName)); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "Initialising a new CA in %s (development defaults: HSM unsealed by a local key file)\n", dir)
		if _, err := runCeremony(ctx, ceremony{Dir: dir, Unseal: "keyfile", Out: out}); err != nil {
			return fmt.Errorf("initialising %s: %w", dir, err)
		}
		if err := createAdminKey(ctx, dir); err != nil {
			return err
		}
	}
	n, err := openNode(ctx, dir, logOut, true)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	if tuneGC() {
		n.log.Debug("garbage collector target set", "gogc", serveGCPercent)
	}
	warnLooseSecrets(n, nil) // the log goes to stderr here
	warnIntents(ctx, n.db, n.log, time.Now())
	ctl := newControl(n)
	l, err := ctl.listen()
	if err != nil {
		return err
	}
	ctlErr := make(chan error, 1)
	go func() { ctlErr <- ctl.serve(ctx, l) }()
	// Only a fresh start unseals by itself. After an operator's seal the
	// module stays sealed until `ca hsm unseal`, whatever the method.
	err = ctl.autoUnseal(ctx)
	if err != nil && !errors.Is(err, errNeedsOperator) {
		return fmt.Errorf("unsealing the HSM: %w", err)
	}
	auto := err == nil // this start was not asked for by an operator
	welcomed := false
	for ; ; auto = false {
		if ok, err := waitUnsealed(ctx, n, ctl, ctlErr, out); !ok {
			return err
		}
		sealed, err := serveUnsealed(ctx, n, ctl, out, !welcomed)
		if err != nil && n.hsm.Sealed() && ctx.Err() == nil {
			// Sealed through the control socket while the app was
			// being assembled: an operator's seal, not a failure.
			ctl.started(errors.New("sealed again while the CA was starting"))
			sealed, err = true, nil
		}
		if err != nil && !auto && ctx.Err() == nil {
			// An operator's unseal whose CA cannot start (its HSM user
			// locked, its configuration refused): `ca hsm unseal` is told, and
			// the node waits sealed for the fix and the next unseal
			// instead of exiting, which a supervisor would only repeat.
			n.hsm.Seal()
			ctl.started(err)
			fmt.Fprintf(out, "The CA could not start after the unseal: %v\nThe HSM is sealed again; fix that and run: ca hsm unseal --data %s\n", err, n.dir)
			continue
		}
		if err != nil || !sealed {
			return err
		}
		welcomed = true
		fmt.Fprintln(out, "The HSM was sealed: stopped serving.")
	}
}

// waitUnsealed returns true once the module is unsealed, waiting for an
// unseal through the control socket while it is sealed. A signal that finds
// the module sealed (an unseal raced by a seal) is no reason to serve: the
// state is checked again every time. It returns false when ctx ends or the
// control socket fails.
func waitUnsealed(ctx context.Context, n *node, ctl *control, ctlErr <-chan error, out io.Writer) (bool, error) {
	if n.hsm.Sealed() {
		fmt.Fprintf(out, "The HSM is sealed (%s unseal). Unseal it with: ca hsm unseal --data %s\n", n.cfg.HSM.Unseal, n.dir)
	}
	for n.hsm.Sealed() {
		select {
		case <-ctl.unsealed:
		case err := <-ctlErr:
			return false, err
		case <-ctx.Done():
			return false, nil
		}
	}
	return true, nil
}

// serveUnsealed assembles and serves the CA until ctx ends (sealed false) or
// an operator seals the HSM through the control socket (sealed true: the
// app is closed before the module is sealed, so nothing uses a key
// mid-seal).
func serveUnsealed(ctx context.Context, n *node, ctl *control, out io.Writer, welcome bool) (sealed bool, err error) {
	a, err := assemble(ctx, n)
	if err != nil {
		return false, err
	}
	defer a.Close()
	if err := a.Listen(); err != nil {
		return false, err
	}
	ctl.started(nil)
	if welcome {
		printWelcome(out, n, a)
	}
	ctl.revoker.Store(a.ra)
	defer ctl.revoker.Store(nil)
	ctl.serving.Store(a)
	defer ctl.serving.Store(nil)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	acks := make(chan chan struct{}, 1)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		select {
		case ack := <-ctl.sealReq:
			acks <- ack
			cancel()
		case <-sctx.Done():
		}
	}()
	err = a.Serve(sctx)
	ctl.revoker.Store(nil) // before the app closes
	ctl.serving.Store(nil)
	// Stop the watcher before looking for a seal request: one taken just
	// as Serve failed must still be answered, or `ca hsm seal` hangs.
	cancel()
	<-watching
	select {
	case ack := <-acks:
		a.Close()
		n.hsm.Seal()
		close(ack)
		return true, err
	default:
		return false, err
	}
}

func printWelcome(out io.Writer, n *node, app *app) {
	admin := filepath.Join(n.dir, adminKeyFile) + `  (scopes: admin; send it as "Authorization: Bearer <key>")`
	if _, err := os.Stat(filepath.Join(n.dir, adminKeyFile)); err != nil {
		// A node added to a cluster shares the first node's keys (they
		// are in the database), not its admin.key file.
		admin = "none in this data directory; use an existing admin key, or `ca apikey create --name admin --scopes admin`"
	}
	fmt.Fprintf(out, `
Strongroom is running.
  ACME directory:   %s
  REST API:         %s/api/v1  (OpenAPI: %s/api/v1/openapi.json)
  OCSP, CRLs:       %s/ocsp, %s/crl/%s.crl (one per issuer: ca issuer list)
  Root certificate: %s
  Admin API key:    %s
Stop with Ctrl-C; restarting with the same data directory reuses the same keys.
`, app.ACMEDirectoryURL(), app.HTTPSURL(), app.HTTPSURL(), app.HTTPURL(), app.HTTPURL(), cmp.Or(app.pipeline.DefaultIssuer(), app.inters[0].ID()),
		config.Path(n.dir, n.cfg.CA.Root.Cert), admin)
	if n.cfg.CA.KeyStore == "pkcs11" {
		fmt.Fprintf(out, "  CA keys:          on PKCS#11 token %q of %s (labels %s)\n", n.cfg.HSM.PKCS11.Token, n.cfg.HSM.PKCS11.Module, caKeyLabels(n))
	}
}

// caKeyLabels lists the CA keys' labels from the configuration: the root's,
// then the intermediates'.
func caKeyLabels(n *node) string {
	p := n.cfg.HSM.PKCS11.LabelPrefix
	var labels []string
	if !n.cfg.CA.Root.External {
		labels = append(labels, p+n.cfg.CA.Root.KeyLabel)
	}
	for _, is := range n.cfg.CA.Intermediates {
		labels = append(labels, p+is.KeyLabel)
	}
	return strings.Join(labels, ", ")
}
