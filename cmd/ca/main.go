// Command ca is Strongroom: a private certificate authority whose keys live
// in an HSM. `ca serve` runs it (initialising a fresh data directory with
// development defaults); `ca init` runs the key ceremony; `ca hsm …`,
// `ca apikey …` and `ca acme …` administer it.
//
// cmd/ca builds every component from the configuration and passes it down;
// nothing imports this package.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ca:", err)
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	dataDir string
}

func rootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "ca",
		Short:         "Strongroom: a private PKI whose keys live in an HSM",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("STRONGROOM_DATA")
	if def == "" {
		def = "./data"
	}
	root.PersistentFlags().StringVar(&g.dataDir, "data", def, "data directory (env STRONGROOM_DATA)")
	root.AddCommand(initCommand(g), serveCommand(g), hsmCommand(g), apikeyCommand(g), acmeCommand(g), issuerCommand(g), certCommand(g))
	return root
}
