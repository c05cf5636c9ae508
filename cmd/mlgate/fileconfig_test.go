package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `
addr: 127.0.0.1:6000
max_file_size: 1GiB
shutdown_timeout: 30s
auth: true
backends:
  - name: hot
    type: localfs
    config:
      root: /tmp/hot
      min_part_size: 1024
  - name: cold
    type: memory
  - name: ext
    plugin:
      path: /opt/mlgate/mlgate-backend
      sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      args: [localfs]
    config: {root: /tmp/ext}
default_backend: hot
routes:
  - project: "team/*"
    model: "big-*"
    backend: cold
  - project: archive
    backend: ext
`

func TestParseGoodConfig(t *testing.T) {
	fc, err := parseFileConfig(strings.NewReader(goodConfig), backendTypes())
	if err != nil {
		t.Fatal(err)
	}
	if fc.DefaultBackend != "hot" || len(fc.Backends) != 3 || len(fc.Routes) != 2 {
		t.Fatalf("parsed %+v", fc)
	}
	if got := string(fc.Backends[0].Config.raw()); got != `{"min_part_size":1024,"root":"/tmp/hot"}` {
		t.Errorf("localfs config as JSON: %s", got)
	}
	if got := string(fc.Backends[1].Config.raw()); got != `{}` {
		t.Errorf("absent config: %s", got)
	}
	p := fc.Backends[2]
	if p.Plugin == nil || p.Plugin.Path != "/opt/mlgate/mlgate-backend" || len(p.Plugin.Args) != 1 || p.kind() != "plugin" {
		t.Errorf("plugin spec %+v", p.Plugin)
	}
	r := fc.routes()
	if r[0].Project != "team/*" || r[0].Model != "big-*" || r[0].Backend != "cold" || r[1].Model != "" {
		t.Errorf("routes %+v", r)
	}

	// The file fills the basics; flags and MLGATE_* variables given explicitly win.
	c := &config{Addr: defaultAddr, MaxFileSize: 5, ShutdownTimeout: time.Minute, DataDir: defaultDataDir}
	t.Setenv("MLGATE_ADDR", "")
	if err := c.applyFile(fc, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:6000" || c.MaxFileSize != 1<<30 || c.ShutdownTimeout != 30*time.Second || !c.Auth || c.DataDir != defaultDataDir {
		t.Errorf("basics from the file: %+v", c)
	}
	c = &config{Addr: "127.0.0.1:7000", MaxFileSize: 5}
	t.Setenv("MLGATE_MAX_FILE_SIZE", "5")
	if err := c.applyFile(fc, map[string]bool{"addr": true}); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7000" || c.MaxFileSize != 5 {
		t.Errorf("explicit flag and env must win: %+v", c)
	}
}

func TestParseEmptyConfigKeepsEmbeddedDefault(t *testing.T) {
	fc, err := parseFileConfig(strings.NewReader("addr: 127.0.0.1:5001\n"), backendTypes())
	if err != nil {
		t.Fatal(err)
	}
	specs, def := fc.backendSpecs(&config{DataDir: "/d"})
	if def != "local" || len(specs) != 1 || specs[0].Type != "localfs" || string(specs[0].Config) != `{"root":"/d/blobs"}` {
		t.Fatalf("embedded default: %+v %q", specs, def)
	}
	// No file at all: the same.
	specs, def = (*fileConfig)(nil).backendSpecs(&config{DataDir: "/d"})
	if def != "local" || len(specs) != 1 {
		t.Fatalf("no file: %+v %q", specs, def)
	}
}

func TestParseBadConfigs(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad yaml":          {"backends: [", "yaml"},
		"unknown key":       {"backend: x\n", "field backend not found"},
		"bad type":          {"backends: [{name: a, type: floppy}]\ndefault_backend: a\n", `unknown backend type "floppy"`},
		"no type":           {"backends: [{name: a}]\ndefault_backend: a\n", "needs a type"},
		"type and plugin":   {"backends: [{name: a, type: memory, plugin: {path: /x, sha256: " + strings.Repeat("a", 64) + "}}]\ndefault_backend: a\n", "not both"},
		"plugin no sha":     {"backends: [{name: a, plugin: {path: /x}}]\ndefault_backend: a\n", "plugin.sha256 is required"},
		"plugin no path":    {"backends: [{name: a, plugin: {sha256: " + strings.Repeat("a", 64) + "}}]\ndefault_backend: a\n", "plugin.path is required"},
		"missing default":   {"backends: [{name: a, type: memory}]\n", "default_backend is missing"},
		"unknown default":   {"backends: [{name: a, type: memory}]\ndefault_backend: b\n", `default_backend "b" is not in backends`},
		"unknown route":     {"backends: [{name: a, type: memory}]\ndefault_backend: a\nroutes: [{project: x, backend: nope}]\n", `backend "nope" is not in backends`},
		"bad glob":          {"backends: [{name: a, type: memory}]\ndefault_backend: a\nroutes: [{project: '[', backend: a}]\n", `pattern "["`},
		"duplicate name":    {"backends: [{name: a, type: memory}, {name: a, type: memory}]\ndefault_backend: a\n", "duplicate name"},
		"bad name":          {"backends: [{name: 'a b', type: memory}]\ndefault_backend: 'a b'\n", "name must be"},
		"config not a map":  {"backends: [{name: a, type: memory, config: [1]}]\ndefault_backend: a\n", "config must be a mapping"},
		"routes no backend": {"routes: [{project: x, backend: a}]\n", "need a backends list"},
		"bad size":          {"max_file_size: lots\n", "max_file_size"},
	} {
		_, err := parseFileConfig(strings.NewReader(tc.yaml), backendTypes())
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrConfig mentioning %q", name, err, tc.want)
		}
	}
}

func TestServeFlagsReadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlgate.yaml")
	if err := os.WriteFile(path, []byte("data_dir: /from/file\naddr: 127.0.0.1:6001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MLGATE_DATA_DIR", "")
	t.Setenv("MLGATE_ADDR", "")
	c, err := serveFlags([]string{"--config", path, "--addr", "127.0.0.1:6002"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/file" || c.Addr != "127.0.0.1:6002" {
		t.Fatalf("config %+v", c)
	}
	if _, err := serveFlags([]string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}); !errors.Is(err, ErrConfig) {
		t.Fatalf("absent file: %v", err)
	}
	if _, err := serveFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

// The example in the repository must stay a valid config.
func TestExampleConfigParses(t *testing.T) {
	fc, err := readFileConfig(filepath.Join("..", "..", "mlgate.example.yaml"), backendTypes())
	if err != nil {
		t.Fatal(err)
	}
	if fc.DefaultBackend != "local" || len(fc.Backends) < 2 || len(fc.Routes) != 2 || fc.MaxFileSize != "10GiB" {
		t.Fatalf("example parsed as %+v", fc)
	}
}

// TestServeLimits: the upload limit and the body read timeout come from their flag, else their
// MLGATE_* variable, else the file, else the defaults; 0 (no limit) is a value like any other.
func TestServeLimits(t *testing.T) {
	t.Setenv("MLGATE_MAX_CONCURRENT_UPLOADS", "")
	t.Setenv("MLGATE_BODY_READ_TIMEOUT", "")
	c, err := serveFlags(nil)
	if err != nil || c.MaxConcurrentUploads != 64 || c.BodyReadTimeout != time.Minute {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	path := filepath.Join(t.TempDir(), "mlgate.yaml")
	if err := os.WriteFile(path, []byte("max_concurrent_uploads: 0\nbody_read_timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = serveFlags([]string{"--config", path}); err != nil || c.MaxConcurrentUploads != 0 || c.BodyReadTimeout != 5*time.Second {
		t.Fatalf("file: %+v %v", c, err)
	}
	t.Setenv("MLGATE_MAX_CONCURRENT_UPLOADS", "8")
	t.Setenv("MLGATE_BODY_READ_TIMEOUT", "90s")
	if c, err = serveFlags([]string{"--config", path}); err != nil || c.MaxConcurrentUploads != 8 || c.BodyReadTimeout != 90*time.Second {
		t.Fatalf("environment over file: %+v %v", c, err)
	}
	if c, err = serveFlags([]string{"--config", path, "--max-concurrent-uploads", "2", "--body-read-timeout", "1s"}); err != nil ||
		c.MaxConcurrentUploads != 2 || c.BodyReadTimeout != time.Second {
		t.Fatalf("flags over environment: %+v %v", c, err)
	}
	for _, args := range [][]string{{"--max-concurrent-uploads", "-1"}, {"--body-read-timeout", "-1s"}} {
		if _, err := serveFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	t.Setenv("MLGATE_BODY_READ_TIMEOUT", "soon")
	if _, err := serveFlags(nil); err == nil || !strings.Contains(err.Error(), "MLGATE_BODY_READ_TIMEOUT") {
		t.Errorf("a bad MLGATE_BODY_READ_TIMEOUT: %v", err)
	}
	for name, yaml := range map[string]string{"uploads": "max_concurrent_uploads: -3\n", "timeout": "body_read_timeout: -1s\n"} {
		if _, err := parseFileConfig(strings.NewReader(yaml), backendTypes()); !errors.Is(err, ErrConfig) {
			t.Errorf("negative %s in the file: %v", name, err)
		}
	}
}

func TestRedirectConfig(t *testing.T) {
	parse := func(typ, config string) (*fileConfig, error) {
		return parseFileConfig(strings.NewReader("backends:\n  - name: b\n    type: "+typ+"\n    config: {bucket: x"+config+"}\ndefault_backend: b\n"), backendTypes())
	}
	for _, c := range []struct {
		typ, config string
		want        *time.Duration // expiry; nil: no redirect
		grace       time.Duration
		err         string
	}{
		{"minio", "", nil, 0, ""},
		{"minio", ", redirect_downloads: false, redirect_expiry: 1m", nil, 0, ""},
		{"minio", ", redirect_downloads: true", ptr(5 * time.Minute), time.Hour, ""},
		{"s3", ", redirect_downloads: true, redirect_expiry: 90s, redirect_grace: 2h", ptr(90 * time.Second), 2 * time.Hour, ""},
		{"s3", ", redirect_downloads: true, redirect_grace: 0s", ptr(5 * time.Minute), 0, ""},
		{"s3", ", redirect_downloads: yes", nil, 0, "redirect_downloads must be true or false"},
		{"s3", ", redirect_downloads: true, redirect_expiry: 5", nil, 0, `redirect_expiry must be a duration such as "5m"`},
		{"s3", ", redirect_downloads: true, redirect_expiry: 5 minutes", nil, 0, "redirect_expiry: time: unknown unit"},
		{"s3", ", redirect_downloads: true, redirect_expiry: 500ms", nil, 0, "outside 1s..168h"},
		{"s3", ", redirect_downloads: true, redirect_expiry: 200h", nil, 0, "outside 1s..168h"},
		{"s3", ", redirect_downloads: true, redirect_grace: -1m", nil, 0, "redirect_grace must not be negative"},
		{"localfs", ", redirect_downloads: true", nil, 0, "for backends of type s3 or minio only, not localfs"},
		{"memory", ", redirect_expiry: 1m", nil, 0, "for backends of type s3 or minio only, not memory"},
	} {
		fc, err := parse(c.typ, c.config)
		if c.err != "" {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s%s: %v, want an ErrConfig saying %q", c.typ, c.config, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s%s: %v", c.typ, c.config, err)
			continue
		}
		p, rest, err := fc.Backends[0].redirect()
		if err != nil || string(rest) != `{"bucket":"x"}` {
			t.Errorf("%s%s: factory config %s, %v: the redirect keys must not reach the factory", c.typ, c.config, rest, err)
		}
		switch {
		case c.want == nil && p != nil:
			t.Errorf("%s%s: redirects (%+v)", c.typ, c.config, p)
		case c.want != nil && (p == nil || p.Expiry != *c.want || p.Grace != c.grace):
			t.Errorf("%s%s: policy %+v, want expiry %v grace %v", c.typ, c.config, p, *c.want, c.grace)
		}
	}
	// A plugin cannot presign: its downloads are proxied, and asking otherwise is an error.
	_, err := parseFileConfig(strings.NewReader(`backends:
  - name: p
    plugin: {path: /x, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}
    config: {redirect_downloads: true}
default_backend: p
`), backendTypes())
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "not plugin:x") {
		t.Errorf("redirect on a plugin: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
