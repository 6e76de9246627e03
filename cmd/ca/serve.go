package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	n, err := openNode(ctx, dir, logOut)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	if err := n.unsealFromEnvironment(ctx); err != nil {
		return fmt.Errorf("unsealing the HSM: %w", err)
	}
	app, err := assemble(ctx, n)
	if err != nil {
		return err
	}
	defer app.Close()
	if err := app.Listen(); err != nil {
		return err
	}
	printWelcome(out, n, app)
	return app.Serve(ctx)
}

func printWelcome(out io.Writer, n *node, app *app) {
	fmt.Fprintf(out, `
Strongroom is running.
  ACME directory:   %s
  REST API:         %s/api/v1  (OpenAPI: %s/api/v1/openapi.json)
  OCSP, CRLs:       %s/ocsp, %s/crl/
  Root certificate: %s
  Admin API key:    %s  (scopes: admin; send it as "Authorization: Bearer <key>")
Stop with Ctrl-C; restarting with the same data directory reuses the same keys.
`, app.ACMEDirectoryURL(), app.HTTPSURL(), app.HTTPSURL(), app.HTTPURL(), app.HTTPURL(),
		config.Path(n.dir, n.cfg.CA.Root.Cert), filepath.Join(n.dir, adminKeyFile))
}
