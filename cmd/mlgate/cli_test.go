package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// leaves walks the command tree and calls fn for every leaf with its path.
func leaves(cmds []*command, parent string, fn func(path string, c *command)) {
	for _, c := range cmds {
		path := parent + " " + c.name
		if c.sub != nil {
			leaves(c.sub, path, fn)
			continue
		}
		fn(path, c)
	}
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestEveryFlagTakesOneAndTwoDashes: -flag and --flag, as mlgate has always taken them, for every flag
// of every command, found in the command tree rather than listed by hand.
func TestEveryFlagTakesOneAndTwoDashes(t *testing.T) {
	n := 0
	leaves(commands(), "mlgate", func(path string, c *command) {
		if c.define == nil {
			return
		}
		probe := newFlagSet(path, nil)
		c.define(probe)
		probe.VisitAll(func(f *flag.Flag) {
			n++
			value := f.DefValue
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				value = "true"
			}
			var got []string
			for _, dashes := range []string{"-", "--"} {
				fs := newFlagSet(path, &bytes.Buffer{})
				c.define(fs)
				if err := fs.Parse([]string{dashes + f.Name + "=" + value}); err != nil {
					t.Errorf("%s %s%s=%s: %v", path, dashes, f.Name, value, err)
					continue
				}
				got = append(got, fs.Lookup(f.Name).Value.String())
			}
			if len(got) == 2 && got[0] != got[1] {
				t.Errorf("%s: -%s gives %q, --%s gives %q", path, f.Name, got[0], f.Name, got[1])
			}
		})
	})
	if n < 30 {
		t.Fatalf("only %d flags found in the command tree", n)
	}
}

func TestHelpListsCommandsAndFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("mlgate %v: exit %d", args, code)
		}
		for _, c := range commands() {
			if !strings.Contains(out, "\n  "+c.name+" ") {
				t.Errorf("mlgate %v does not list %s:\n%s", args, c.name, out)
			}
		}
		if !strings.Contains(out, "completion") {
			t.Errorf("mlgate %v does not list completion", args)
		}
	}
	leaves(commands(), "mlgate", func(path string, c *command) {
		if c.define == nil {
			return
		}
		args := append(strings.Fields(path)[1:], "--help")
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:\n  "+path) {
			t.Errorf("%s --help: exit %d\n%s", path, code, out)
		}
		probe := newFlagSet(path, nil)
		c.define(probe)
		probe.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "--"+f.Name+" ") {
				t.Errorf("%s --help does not show --%s:\n%s", path, f.Name, out)
			}
		})
		// `mlgate help <command>` says the same.
		code, viaHelp, _ := runCLI(t, append([]string{"help"}, strings.Fields(path)[1:]...)...)
		if code != 0 || viaHelp != out {
			t.Errorf("mlgate help %s differs from %s --help", path, path)
		}
	})
}

func TestExitStatusOfBadCommandLines(t *testing.T) {
	for _, args := range [][]string{{"nope"}, {"backends"}, {"backends", "nope"}, {"serve", "--nonsense"},
		{"import", "mlflow"}, {"backends", "check"}, {"completion"}, {"metadata"}, {"metadata", "migrate"}} {
		if code, _, errOut := runCLI(t, args...); code != 2 || !strings.HasPrefix(errOut, "mlgate: ") && !strings.Contains(errOut, "mlgate: ") {
			t.Errorf("mlgate %v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}

func TestShellCompletion(t *testing.T) {
	code, bash, _ := runCLI(t, "completion", "bash")
	if code != 0 || !strings.Contains(bash, "__start_mlgate") {
		t.Fatalf("completion bash: exit %d\n%.300s", code, bash)
	}
	code, zsh, _ := runCLI(t, "completion", "zsh")
	if code != 0 || !strings.HasPrefix(zsh, "#compdef mlgate") {
		t.Fatalf("completion zsh: exit %d\n%.300s", code, zsh)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "imp"}, "import"},
		{[]string{"__complete", "import", ""}, "mlflow"},
		{[]string{"__complete", "serve", "--ad"}, "--addr"},
		{[]string{"__complete", "serve", "-max-c"}, "--max-concurrent-uploads"},
		{[]string{"__complete", "backends", "migrate", "--dry"}, "--dry-run"},
	} {
		code, out, _ := runCLI(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("mlgate %v: exit %d, %q; want %s offered", tc.args, code, out, tc.want)
		}
	}
}
