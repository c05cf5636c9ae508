// Command mlgate is the one mlgate binary: `mlgate serve` runs the gateway, `mlgate fsck` checks
// metadata against blob storage, `mlgate token` manages API tokens, `mlgate import` imports an MLflow or GitLab source, `mlgate backends` lists, checks and
// migrates storage backends, `mlgate push` and `mlgate pull` move a model version's files to and from a server, `mlgate version` prints the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

const usage = `usage: mlgate <command> [flags]

commands:
  serve     run the gateway (default)
  fsck      check metadata against blob storage; --repair removes unreferenced blobs
  import    import an MLflow tracking server or a GitLab project (mlflow, verify, status)
  token     create, list and revoke API tokens (for serve --auth)
  backends  list, check and migrate between storage backends (see --config)
  push      upload a directory or files as a model version (client of a running server)
  pull      download a model version, an alias's version or a candidate (client of a running server)
  version   print the version

Run "mlgate <command> -h" for the flags of a command.
`

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Every command that opens backends may start plugin processes. Closing the backends stops them, and
	// this kills whatever a failed start, a restart racing with Close or an early return left behind
	// (all plugins are launched Managed): no plugin outlives mlgate when it exits normally.
	defer plugin.CleanupClients()
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr)
	case "fsck":
		var clean bool
		clean, err = runFsck(ctx, args, stdout, stderr)
		if err == nil && !clean {
			return 1
		}
	case "import":
		var ok bool
		ok, err = runImport(ctx, args, stdout, stderr)
		if err == nil && !ok {
			return 1
		}
	case "token":
		err = runToken(ctx, args, stdout, stderr)
	case "push", "pull":
		transferCmd := runPush
		if cmd == "pull" {
			transferCmd = runPull
		}
		var ok bool
		ok, err = transferCmd(ctx, args, stdout, stderr)
		if err == nil && !ok {
			return 1
		}
	case "backends":
		err = runBackends(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "mlgate", buildVersion())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mlgate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mlgate:", err)
		return 1
	}
	return 0
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
