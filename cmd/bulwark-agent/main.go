// Command bulwark-agent is the Bulwark device agent: the daemon
// (bulwark-agent run) and its local commands. See package agent/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-iot/bulwark/internal/agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
