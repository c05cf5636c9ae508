package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command line: a tree of commands, each leaf with a flag set of the standard flag package.
//
// Flags are parsed by the standard package, which takes both -flag and --flag, as every mlgate
// command always has; cobra provides what the standard package lacks: the command tree, `mlgate help`,
// help in the layout of kubectl and gh, and shell completion (`mlgate completion bash|zsh`, whose
// scripts call the hidden `mlgate __complete`).

// runFunc runs a leaf command once its flags are parsed; fs holds the positional arguments.
type runFunc func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error

// command is a node of the command tree: a group (sub set) or a leaf (define or raw set).
type command struct {
	name    string
	summary string // one line, lowercase, no period
	args    string // the positional arguments in the usage line, e.g. "NAME" or "MODEL@VERSION DIR"
	long    string // more text shown by help, optional
	// define puts the leaf's flags on fs and returns what runs it once they are parsed. It must have no
	// side effects: help and completion call it on a scratch flag set.
	define func(fs *flag.FlagSet) runFunc
	// nargs is how many positional arguments the leaf takes, -1 for any number; flags may come before,
	// between and after them.
	nargs int
	// raw is set instead of define for a leaf that parses its own arguments, subcommands included; its
	// help is its own and completion knows none of its flags.
	raw func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	sub []*command
}

// exitError ends a command with a status other than 0 or 1 without another message, or with 1 when the
// command has already reported its problems (fsck found some, an import could not take everything).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// errProblems is returned by a command that printed what went wrong and exits 1.
var errProblems = exitError{code: 1}

// usageError is a command line that cannot be run as given (a missing or unknown command, a bad flag,
// a missing argument): exit status 2, as the standard flag package has it.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// commands is the mlgate command tree, in the order help lists it.
func commands() []*command {
	return []*command{
		{name: "serve", summary: "run the gateway (the default command)", define: defineServe},
		{name: "fsck", summary: "check metadata against blob storage; --repair removes unreferenced blobs", define: defineFsck},
		{name: "import", summary: "import an MLflow tracking server or a GitLab project", long: importLong, sub: []*command{
			{name: "mlflow", summary: "import into a project: experiments become models, runs candidates", define: defineImport(false)},
			{name: "verify", summary: "compare the source with what was imported; exit 1 on any difference", define: defineImport(true)},
			{name: "status", summary: "show the mapping table and the progress of imports into a project", define: defineImportStatus},
		}},
		{name: "token", summary: "create, list and revoke API tokens (for serve --auth)", long: tokenLong, sub: []*command{
			{name: "create", summary: "issue a project token (or, with --instance, an instance token) and print its secret, once", define: defineTokenCreate},
			{name: "list", summary: "list tokens, never their secrets", define: defineTokenList},
			{name: "revoke", summary: "revoke a token", args: "ID", nargs: 1, define: defineTokenRevoke},
		}},
		{name: "push", summary: "upload a directory or files as a model version", args: "MODEL@VERSION DIR|FILE…", nargs: -1,
			long: pushLong, define: definePush},
		{name: "pull", summary: "download a model version, an alias or a candidate into a directory", args: "MODEL@VERSION|MODEL@ALIAS|candidate:IID DIR",
			nargs: 2, long: pullLong, define: definePull},
		{name: "backup", summary: "copy the metadata of a running (--url) or stopped (--data-dir) server", long: backupLong, define: defineBackup},
		{name: "restore", summary: "restore a metadata backup into an empty data dir", long: backupLong, define: defineRestore},
		{name: "backends", summary: "list, check and migrate between storage backends (see --config)", long: backendsLong, sub: []*command{
			{name: "list", summary: "list the configured backends and their health", define: defineBackendsList},
			{name: "check", summary: "write, read and delete a probe object on one backend", args: "NAME", nargs: 1, define: defineBackendsCheck},
			{name: "migrate", summary: "move files from one backend to another", long: migrateHelp, define: defineBackendsMigrate},
		}},
		{name: "metadata", summary: "move the metadata store from bbolt to PostgreSQL", sub: []*command{
			{name: "migrate", summary: "copy a stopped bbolt store into an empty PostgreSQL store and verify it", long: metadataMigrateLong,
				define: defineMetadataMigrate},
		}},
		{name: "version", summary: "print the version", define: func(*flag.FlagSet) runFunc {
			return func(_ context.Context, _ *flag.FlagSet, stdout, _ io.Writer) error {
				_, err := fmt.Fprintln(stdout, "mlgate", buildVersion())
				return err
			}
		}},
	}
}

// execute runs the command line args and returns the process's exit status: 0, 1 for a failure
// (printed), 2 for a command line that could not be parsed.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// `mlgate` alone, or followed by flags, is `mlgate serve`, as it has always been.
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && !isHelpFlag(args[0])) {
		args = append([]string{"serve"}, args...)
	}
	root := cobraTree()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var exit exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, new(usageError)), strings.HasPrefix(err.Error(), "unknown command"):
		fmt.Fprintln(stderr, "mlgate:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "mlgate:", err)
		return 1
	}
}

func isHelpFlag(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

// cobraTree builds the cobra commands of the tree.
func cobraTree() *cobra.Command {
	root := &cobra.Command{
		Use:   "mlgate",
		Short: "mlgate: an artifact storage gateway and model registry with an MLflow-compatible API",
		Long: "mlgate serves an MLflow-compatible REST API, GitLab-style ml_model package endpoints and a web UI\n" +
			"over pluggable blob storage. `mlgate` alone runs `mlgate serve`.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	for _, c := range commands() {
		root.AddCommand(cobraCommand(c, "mlgate"))
	}
	root.AddCommand(completionCommand(root))
	return root
}

func cobraCommand(c *command, parent string) *cobra.Command {
	path := parent + " " + c.name
	cc := &cobra.Command{Use: c.name, Short: c.summary, Long: strings.TrimSpace(c.summary + "\n\n" + c.long),
		SilenceErrors: true, SilenceUsage: true}
	if c.sub != nil {
		for _, s := range c.sub {
			cc.AddCommand(cobraCommand(s, path))
		}
		cc.Args = func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], path)
			}
			return nil
		}
		cc.RunE = func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageErrorf("%s needs a command", path)
		}
		return cc
	}
	cc.Use = c.name + " [flags]"
	if c.args != "" {
		cc.Use = c.name + " " + c.args + " [flags]"
	}
	cc.DisableFlagParsing = true
	if c.raw != nil {
		cc.Use = c.name + " COMMAND [flags]"
		cc.RunE = func(cmd *cobra.Command, args []string) error {
			return c.raw(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}
		cc.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
			_ = c.raw(cmd.Context(), []string{"--help"}, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
		return cc
	}
	cc.RunE = func(cmd *cobra.Command, args []string) error {
		fs := newFlagSet(path, cmd.ErrOrStderr())
		run := c.define(fs)
		fs.Usage = func() { printUsage(fs.Output(), c, path, fs) }
		if slices.ContainsFunc(args, isHelpFlag) {
			// Asked for, help goes to stdout; after a flag error the standard package prints it to stderr.
			printUsage(cmd.OutOrStdout(), c, path, fs)
			return flag.ErrHelp
		}
		if err := parseInterleaved(fs, args, c.nargs); err != nil {
			if !errors.Is(err, flag.ErrHelp) {
				return usageError{err.Error()}
			}
			return err
		}
		return run(cmd.Context(), fs, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	cc.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		fs := newFlagSet(path, cmd.OutOrStdout())
		c.define(fs)
		printUsage(cmd.OutOrStdout(), c, path, fs)
	})
	// With DisableFlagParsing cobra leaves flag names to this function: complete them from the leaf's
	// own flag set, and paths for anything else.
	cc.ValidArgsFunction = func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		fs := newFlagSet(path, io.Discard)
		c.define(fs)
		var out []cobra.Completion
		fs.VisitAll(func(f *flag.Flag) {
			if name := "--" + f.Name; strings.HasPrefix(name, toComplete) || strings.HasPrefix("-"+f.Name, toComplete) {
				out = append(out, cobra.CompletionWithDesc(name, firstLine(f.Usage)))
			}
		})
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return cc
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// newFlagSet is the flag set of a leaf: errors are returned, not fatal.
func newFlagSet(path string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

// parseInterleaved parses args allowing flags between positional arguments (the standard package
// stops at the first), and checks their count (nargs -1: any). The positional arguments end up in
// fs.Args().
func parseInterleaved(fs *flag.FlagSet, args []string, nargs int) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // after "--" every argument is positional
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if nargs >= 0 && len(pos) != nargs {
		if nargs == 0 {
			return fmt.Errorf("unexpected argument %q", pos[0])
		}
		return fmt.Errorf("want %d argument(s), got %d: %q", nargs, len(pos), pos)
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// printUsage writes a leaf's help in the layout of kubectl and gh: what it does, its usage line, its
// flags with their defaults. Flags are shown as --name; -name works as well.
func printUsage(w io.Writer, c *command, path string, fs *flag.FlagSet) {
	text := c.summary
	if c.long != "" {
		text += "\n\n" + strings.TrimSpace(c.long)
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s", text, path)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprint(w, " [flags]\n\nFlags:\n")
	pfs := pflag.NewFlagSet(path, pflag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		pf.Shorthand = ""        // mlgate's flags are long; -name is the standard package's form of --name
		pf.DefValue = f.DefValue // the conversion takes the current value, which parsed flags changed
		pfs.AddFlag(pf)
	})
	pfs.Bool("help", false, "help for "+c.name)
	pfs.Lookup("help").Shorthand = "h"
	fmt.Fprint(w, pfs.FlagUsages())
	fmt.Fprint(w, "\nFlags may also be written with one dash (-addr), and take their value after = or a space.\n")
}

// completionCommand writes the shell completion scripts.
func completionCommand(root *cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   "completion",
		Short: "print a shell completion script (bash or zsh)",
		Long: "Print a shell completion script for mlgate.\n\n" +
			"  bash: source <(mlgate completion bash)     or save it to /etc/bash_completion.d/mlgate\n" +
			"  zsh:  mlgate completion zsh > \"${fpath[1]}/_mlgate\"   (compinit must be enabled)",
		SilenceErrors: true, SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Help()
			return usageErrorf("completion needs a shell: bash or zsh")
		},
	}
	c.AddCommand(&cobra.Command{Use: "bash", Short: "print the bash completion script", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return root.GenBashCompletionV2(cmd.OutOrStdout(), true) }})
	c.AddCommand(&cobra.Command{Use: "zsh", Short: "print the zsh completion script", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return root.GenZshCompletion(cmd.OutOrStdout()) }})
	return c
}
