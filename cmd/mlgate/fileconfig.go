package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/artifact"
	"go.yaml.in/yaml/v3"
)

// defaultBackendName is the backend of the embedded defaults: localfs at <data-dir>/blobs. Rows written
// before backends were recorded per file read from the default backend, which without a config file is
// this one, where they were written.
const defaultBackendName = "local"

// fileConfig is the YAML file `serve --config` reads (see mlgate.example.yaml). Every basic setting is
// optional; a flag or MLGATE_* variable given explicitly wins over the file.
type fileConfig struct {
	DataDir           string        `yaml:"data_dir"`
	Addr              string        `yaml:"addr"`
	MaxFileSize       string        `yaml:"max_file_size"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	LogFormat         string        `yaml:"log_format"`
	LogLevel          string        `yaml:"log_level"`
	Auth              *bool         `yaml:"auth"`
	InsecureListenAny *bool         `yaml:"insecure_listen_any"`
	// Pointers, as 0 is a value (no limit) that must win over the default.
	MaxConcurrentUploads *int           `yaml:"max_concurrent_uploads"`
	BodyReadTimeout      *time.Duration `yaml:"body_read_timeout"`
	// SigningKeyFile holds the signing secret (see configuredSigningKey); MLGATE_SIGNING_KEY wins over it.
	// Only serve reads the file, at start.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Metadata selects the metadata store (see metadataSpec); absent is bbolt at <data-dir>/mlgate.db.
	Metadata *metadataSpec `yaml:"metadata"`

	Backends       []backendSpec `yaml:"backends"`
	DefaultBackend string        `yaml:"default_backend"`
	Routes         []routeSpec   `yaml:"routes"`
}

// metadataSpec is the file's metadata section: which store holds the metadata, and for PostgreSQL where.
// MLGATE_METADATA_DSN overrides DSN (see resolveMetadata).
type metadataSpec struct {
	Type string `yaml:"type"`
	DSN  string `yaml:"dsn"`
}

// backendSpec declares one backend: an in-process Type, or a Plugin binary. Config is handed to the
// backend's factory (or the plugin's Configure call) as JSON.
type backendSpec struct {
	Name   string      `yaml:"name"`
	Type   string      `yaml:"type"`
	Plugin *pluginSpec `yaml:"plugin"`
	Config yamlJSON    `yaml:"config"`
}

type pluginSpec struct {
	Path   string   `yaml:"path"`
	SHA256 string   `yaml:"sha256"`
	Args   []string `yaml:"args"`
}

type routeSpec struct {
	Project string `yaml:"project"`
	Model   string `yaml:"model"`
	Backend string `yaml:"backend"`
}

// yamlJSON is a YAML mapping kept as JSON, the form backend factories read.
type yamlJSON json.RawMessage

func (j *yamlJSON) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	if v == nil {
		*j = nil
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("line %d: config must be a mapping", n.Line)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("line %d: config: %w", n.Line, err)
	}
	*j = b
	return nil
}

// raw returns the config as JSON, "{}" when absent.
func (j yamlJSON) raw() json.RawMessage {
	if len(j) == 0 {
		return json.RawMessage("{}")
	}
	return json.RawMessage(j)
}

// identity is what decides whether a reload may keep a running backend: the same name, kind and config.
func (s backendSpec) identity() string {
	b, _ := json.Marshal(struct {
		N, T   string
		P      *pluginSpec
		Config json.RawMessage
	}{s.Name, s.Type, s.Plugin, s.Config.raw()})
	return string(b)
}

// kind is "in-process" or "plugin".
func (s backendSpec) kind() string {
	if s.Plugin != nil {
		return "plugin"
	}
	return "in-process"
}

// typeName is what `backends list` shows: the in-process type, or the plugin's file name.
func (s backendSpec) typeName() string {
	if s.Plugin != nil {
		return "plugin:" + filepath.Base(s.Plugin.Path)
	}
	return s.Type
}

// ErrConfig marks a configuration error: a bad file, an unknown backend type, a route to an unknown
// backend, a missing default.
var ErrConfig = errors.New("invalid configuration")

var backendNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readFileConfig reads and validates a config file. Errors wrap ErrConfig and name the file.
func readFileConfig(path string, types []string) (*fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer f.Close()
	fc, err := parseFileConfig(f, types)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// parseFileConfig decodes YAML strictly (unknown keys are errors: a typo must not silently fall back to a
// default) and validates the backends and routes against the in-process types known to this build.
func parseFileConfig(r io.Reader, types []string) (*fileConfig, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	fc := &fileConfig{}
	if err := dec.Decode(fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := fc.validate(types); err != nil {
		return nil, err
	}
	return fc, nil
}

func (fc *fileConfig) validate(types []string) error {
	if fc.MaxFileSize != "" {
		if _, err := parseByteSize(fc.MaxFileSize); err != nil {
			return fmt.Errorf("%w: max_file_size: %v", ErrConfig, err)
		}
	}
	if fc.MaxConcurrentUploads != nil && *fc.MaxConcurrentUploads < 0 {
		return fmt.Errorf("%w: max_concurrent_uploads must not be negative", ErrConfig)
	}
	if fc.BodyReadTimeout != nil && *fc.BodyReadTimeout < 0 {
		return fmt.Errorf("%w: body_read_timeout must not be negative", ErrConfig)
	}
	if err := fc.Metadata.validate(); err != nil {
		return err
	}
	if len(fc.Backends) == 0 {
		if fc.DefaultBackend != "" || len(fc.Routes) > 0 {
			return fmt.Errorf("%w: default_backend and routes need a backends list", ErrConfig)
		}
		return nil // the embedded default backend
	}
	seen := map[string]bool{}
	for i, b := range fc.Backends {
		where := fmt.Sprintf("backends[%d] (%q)", i, b.Name)
		switch {
		case !backendNamePattern.MatchString(b.Name):
			return fmt.Errorf("%w: %s: name must be 1-64 letters, digits, '.', '_' or '-'", ErrConfig, where)
		case seen[b.Name]:
			return fmt.Errorf("%w: %s: duplicate name", ErrConfig, where)
		case b.Type != "" && b.Plugin != nil:
			return fmt.Errorf("%w: %s: give either type or plugin, not both", ErrConfig, where)
		case b.Type == "" && b.Plugin == nil:
			return fmt.Errorf("%w: %s: needs a type (one of %s) or a plugin", ErrConfig, where, strings.Join(types, ", "))
		case b.Type != "" && !slices.Contains(types, b.Type):
			return fmt.Errorf("%w: %s: unknown backend type %q (this build has %s; anything else runs as a plugin)",
				ErrConfig, where, b.Type, strings.Join(types, ", "))
		case b.Plugin != nil && b.Plugin.Path == "":
			return fmt.Errorf("%w: %s: plugin.path is required", ErrConfig, where)
		case b.Plugin != nil && !sha256Pattern.MatchString(b.Plugin.SHA256):
			return fmt.Errorf("%w: %s: plugin.sha256 is required, as 64 lowercase hex digits (sha256sum of the binary)", ErrConfig, where)
		}
		if _, _, err := b.redirect(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		seen[b.Name] = true
	}
	if fc.DefaultBackend == "" {
		return fmt.Errorf("%w: default_backend is missing: name the backend that new files go to when no route matches", ErrConfig)
	}
	if !seen[fc.DefaultBackend] {
		return fmt.Errorf("%w: default_backend %q is not in backends", ErrConfig, fc.DefaultBackend)
	}
	for i, r := range fc.routes() {
		if !seen[r.Backend] {
			return fmt.Errorf("%w: routes[%d]: backend %q is not in backends", ErrConfig, i, r.Backend)
		}
	}
	// The gateway's own check covers the patterns; running it here makes a bad glob a startup error.
	if _, err := artifact.NewStaticStorage(fc.placeholderBackends(), fc.DefaultBackend, fc.routes()); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// routes converts the file's routes.
func (fc *fileConfig) routes() []artifact.Route {
	out := make([]artifact.Route, len(fc.Routes))
	for i, r := range fc.Routes {
		out[i] = artifact.Route{Project: r.Project, Model: r.Model, Backend: r.Backend}
	}
	return out
}

// backendSpecs returns the declared backends and default, or the embedded default when the file declares
// none: localfs at <data-dir>/blobs, named "local".
func (fc *fileConfig) backendSpecs(cfg *config) ([]backendSpec, string) {
	if fc == nil || len(fc.Backends) == 0 {
		raw, _ := json.Marshal(map[string]string{"root": cfg.blobRoot()})
		return []backendSpec{{Name: defaultBackendName, Type: "localfs", Config: raw}}, defaultBackendName
	}
	return fc.Backends, fc.DefaultBackend
}

// placeholderBackends maps every declared name to a nil-free placeholder, for validating routes without
// opening anything.
func (fc *fileConfig) placeholderBackends() map[string]*backends.CheckedBackend {
	m := map[string]*backends.CheckedBackend{}
	for _, b := range fc.Backends {
		m[b.Name] = backends.Checked(b.Name, placeholder{})
	}
	return m
}

// placeholder stands in for a backend that is not opened; its methods are never called.
type placeholder struct{ backends.Backend }

// applyFile fills the basics of cfg from the file where neither a flag nor an MLGATE_* variable set them.
// explicit holds the names of flags given on the command line.
func (c *config) applyFile(fc *fileConfig, explicit map[string]bool) error {
	unset := func(flagName, env string) bool {
		if explicit[flagName] {
			return false
		}
		v, ok := os.LookupEnv(env)
		return !ok || v == ""
	}
	if fc.DataDir != "" && unset("data-dir", "MLGATE_DATA_DIR") {
		c.DataDir = fc.DataDir
	}
	if fc.Addr != "" && unset("addr", "MLGATE_ADDR") {
		c.Addr = fc.Addr
	}
	if fc.MaxFileSize != "" && unset("max-file-size", "MLGATE_MAX_FILE_SIZE") {
		n, err := parseByteSize(fc.MaxFileSize)
		if err != nil {
			return fmt.Errorf("%w: max_file_size: %v", ErrConfig, err)
		}
		c.MaxFileSize = n
	}
	if fc.ShutdownTimeout > 0 && !explicit["shutdown-timeout"] {
		c.ShutdownTimeout = fc.ShutdownTimeout
	}
	if fc.LogFormat != "" && unset("log-format", "MLGATE_LOG_FORMAT") {
		c.LogFormat = fc.LogFormat
	}
	if fc.LogLevel != "" && unset("log-level", "MLGATE_LOG_LEVEL") {
		c.LogLevel = fc.LogLevel
	}
	if fc.Auth != nil && unset("auth", "MLGATE_AUTH") {
		c.Auth = *fc.Auth
	}
	if fc.InsecureListenAny != nil && !explicit["insecure-listen-any"] {
		c.InsecureListenAny = *fc.InsecureListenAny
	}
	if fc.MaxConcurrentUploads != nil && unset("max-concurrent-uploads", "MLGATE_MAX_CONCURRENT_UPLOADS") {
		c.MaxConcurrentUploads = *fc.MaxConcurrentUploads
	}
	if fc.BodyReadTimeout != nil && unset("body-read-timeout", "MLGATE_BODY_READ_TIMEOUT") {
		c.BodyReadTimeout = *fc.BodyReadTimeout
	}
	return nil
}

// basics renders the basic settings, which a reload cannot change (they need a restart), for comparison.
func (fc *fileConfig) basics() string {
	c := *fc
	c.Backends, c.DefaultBackend, c.Routes = nil, "", nil
	var buf bytes.Buffer
	_ = yaml.NewEncoder(&buf).Encode(c)
	return buf.String()
}
