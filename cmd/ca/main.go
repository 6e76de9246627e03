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
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command group (ca hsm, ca hsm users
// …) fail on a word that names none of its subcommands: cobra would print
// the group's help and exit 0, so a typo in a script looked like success.
// A group given no word still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		return cmd.Help()
	}
}
