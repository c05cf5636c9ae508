// Command mlgate is the one mlgate binary: `mlgate serve` runs the gateway, `mlgate fsck` checks
// metadata against blob storage, `mlgate token` manages API tokens, `mlgate backup` and `mlgate restore` copy the metadata, `mlgate import` imports an MLflow or GitLab source, `mlgate backends` lists, checks and
// migrates storage backends, `mlgate version` prints the build.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/hashicorp/go-plugin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code (see execute).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Every command that opens backends may start plugin processes. Closing the backends stops them, and
	// this kills whatever a failed start, a restart racing with Close or an early return left behind
	// (all plugins are launched Managed): no plugin outlives mlgate when it exits normally.
	defer plugin.CleanupClients()
	return execute(ctx, args, stdout, stderr)
}

// buildVersion is the -ldflags version, or the VCS revision the Go toolchain recorded.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}
