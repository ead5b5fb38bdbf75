// Command bulwark runs the Bulwark control plane (bulwark server) and is
// the admin CLI for it (every other subcommand).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-iot/bulwark/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
