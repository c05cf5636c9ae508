package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
)

// Defaults for serve and fsck. Each flag can also come from the MLGATE_* variable named beside it.
const (
	defaultDataDir = "./mlgate-data"
	defaultAddr    = "127.0.0.1:5000"
)

// Sweeper defaults; see runSweeper for why.
const (
	defaultSweepInterval       = 5 * time.Minute
	defaultSweepGrace          = time.Hour
	defaultSweepMultipartGrace = 24 * time.Hour
	minSweepGrace              = time.Minute
)

// config is the typed configuration of a running mlgate.
type config struct {
	DataDir         string
	Addr            string
	MaxFileSize     int64
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
	// Auth requires a token (mlgate token create) on every API route.
	Auth bool
	// InsecureListenAny allows a non-loopback address without Auth.
	InsecureListenAny bool
	// MaxConcurrentUploads bounds the uploads running at once (0: no limit); see gateway.Config.
	MaxConcurrentUploads int
	// BodyReadTimeout is how long a request body may go without a byte arriving (0: no limit).
	BodyReadTimeout time.Duration
	// SweepInterval is how often the background sweeper runs (0: never); SweepGrace and
	// SweepMultipartGrace are how old garbage must be before it removes it (see runSweeper).
	SweepInterval       time.Duration
	SweepGrace          time.Duration
	SweepMultipartGrace time.Duration
	// BlobDeletionDelay is, with PostgreSQL, the least time a replaced or deleted blob outlives its row
	// (see artifact.Service.RunDeletions).
	BlobDeletionDelay time.Duration
	// TLSCert and TLSKey, both set, make serve answer HTTPS with that certificate chain and key.
	TLSCert, TLSKey string
	// metrics, set by serve, counts what the store and the backends it opens do.
	metrics *serveMetrics
	// ConfigFile is the YAML file of --config ("" = embedded defaults); file is its content.
	ConfigFile string
	file       *fileConfig
}

// addConfigFlag registers --config, shared by every command that opens backends.
func addConfigFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.ConfigFile, "config", envOr("MLGATE_CONFIG", ""),
		"YAML config file declaring the metadata store, backends and routes (MLGATE_CONFIG); see mlgate.example.yaml")
}

// loadFile reads c.ConfigFile, if any, and fills the basics that no flag in explicit and no MLGATE_*
// variable set.
func (c *config) loadFile(explicit map[string]bool) error {
	if c.ConfigFile == "" {
		return nil
	}
	fc, err := readFileConfig(c.ConfigFile, backendTypes())
	if err != nil {
		return err
	}
	c.file = fc
	return c.applyFile(fc, explicit)
}

// explicitFlags returns the names of the flags given on the command line.
func explicitFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// backendSpecs returns the configured backends and the default's name.
func (c *config) backendSpecs() ([]backendSpec, string) { return c.file.backendSpecs(c) }

// routes returns the configured routes.
func (c *config) routes() []artifact.Route {
	if c.file == nil {
		return nil
	}
	return c.file.routes()
}

// dbPath and blobRoot are where the embedded defaults keep metadata and blobs inside the data dir.
func (c *config) dbPath() string   { return filepath.Join(c.DataDir, "mlgate.db") }
func (c *config) blobRoot() string { return filepath.Join(c.DataDir, "blobs") }

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// envBool reads a boolean environment variable (1, true, 0, false…); unset or empty is false.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1 or 0", name, v)
	}
	return b, nil
}

// envInt reads a non-negative integer environment variable; unset or empty is def.
func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a number, 0 or more", name, v)
	}
	return n, nil
}

// envDuration reads a non-negative duration environment variable such as 60s; unset or empty is def.
func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 60s, 0 or more", name, v)
	}
	return d, nil
}

// byteSize is a flag.Value for sizes such as 10GiB, 512MB or 1048576.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// parseByteSize reads a positive size with an optional unit suffix.
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: want a positive number with an optional unit such as 10GiB", s)
	}
	return n * mult, nil
}

// addDataDirFlag registers --data-dir, shared by every command that opens the store.
func addDataDirFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", envOr("MLGATE_DATA_DIR", defaultDataDir),
		"directory holding the metadata database and local blobs (MLGATE_DATA_DIR)")
}

// serveFlags parses serve's flags over environment defaults.
func serveFlags(args []string) (*config, error) {
	c := &config{}
	fs := newFlagSet("mlgate serve", io.Discard)
	finish := defineServeFlags(fs, c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// defineServeFlags puts serve's flags on fs, their defaults taken from the environment, and returns
// what completes c once fs is parsed: a malformed variable, a negative limit or a bad config file is
// its error.
func defineServeFlags(fs *flag.FlagSet, c *config) (finish func() error) {
	var envErr error
	keep := func(err error) {
		if envErr == nil {
			envErr = err
		}
	}
	addDataDirFlag(fs, c)
	fs.StringVar(&c.Addr, "addr", envOr("MLGATE_ADDR", defaultAddr), "listen address HOST:PORT (MLGATE_ADDR)")
	size := byteSize(gateway.DefaultMaxFileSize)
	if v := os.Getenv("MLGATE_MAX_FILE_SIZE"); v != "" {
		if err := size.Set(v); err != nil {
			keep(fmt.Errorf("MLGATE_MAX_FILE_SIZE: %w", err))
		}
	}
	fs.Var(&size, "max-file-size", "largest file an upload may store, a `size` such as 10GiB (MLGATE_MAX_FILE_SIZE)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Minute,
		"how long SIGTERM waits for in-flight transfers before closing them")
	fs.StringVar(&c.LogFormat, "log-format", envOr("MLGATE_LOG_FORMAT", "text"), "text or json (MLGATE_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("MLGATE_LOG_LEVEL", "info"), "debug, info, warn or error (MLGATE_LOG_LEVEL)")
	auth, err := envBool("MLGATE_AUTH")
	keep(err)
	fs.BoolVar(&c.Auth, "auth", auth,
		"require a token (see mlgate token create) on every API route (MLGATE_AUTH=1)")
	fs.BoolVar(&c.InsecureListenAny, "insecure-listen-any", false,
		"allow listening on a non-loopback address without --auth")
	uploads, err := envInt("MLGATE_MAX_CONCURRENT_UPLOADS", gateway.DefaultMaxConcurrentUploads)
	keep(err)
	fs.IntVar(&c.MaxConcurrentUploads, "max-concurrent-uploads", uploads,
		"uploads running at once; more are answered 429 with Retry-After, 0 for no limit (MLGATE_MAX_CONCURRENT_UPLOADS)")
	bodyTimeout, err := envDuration("MLGATE_BODY_READ_TIMEOUT", gateway.DefaultBodyReadTimeout)
	keep(err)
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", bodyTimeout,
		"how long a request body may go without a byte arriving before the request fails with 408, 0 for no limit (MLGATE_BODY_READ_TIMEOUT)")
	sweepInterval, err := envDuration("MLGATE_SWEEP_INTERVAL", defaultSweepInterval)
	keep(err)
	fs.DurationVar(&c.SweepInterval, "sweep-interval", sweepInterval,
		"how often the background sweeper removes garbage (unreferenced blobs, staging leftovers, abandoned multipart uploads), 0 to never (MLGATE_SWEEP_INTERVAL)")
	sweepGrace, err := envDuration("MLGATE_SWEEP_GRACE", defaultSweepGrace)
	keep(err)
	fs.DurationVar(&c.SweepGrace, "sweep-grace", sweepGrace,
		"age before the sweeper removes an unreferenced blob or a staging leftover (MLGATE_SWEEP_GRACE)")
	multipartGrace, err := envDuration("MLGATE_SWEEP_MULTIPART_GRACE", defaultSweepMultipartGrace)
	keep(err)
	fs.DurationVar(&c.SweepMultipartGrace, "sweep-multipart-grace", multipartGrace,
		"time without a new part before the sweeper removes a multipart upload (MLGATE_SWEEP_MULTIPART_GRACE)")
	deletionDelay, err := envDuration("MLGATE_BLOB_DELETION_DELAY", artifact.DefaultDeletionDelay)
	keep(err)
	fs.DurationVar(&c.BlobDeletionDelay, "blob-deletion-delay", deletionDelay,
		"with PostgreSQL metadata (replicas), the least time a replaced or deleted blob is kept for downloads that other replicas stream; a replica still streaming it keeps it longer (MLGATE_BLOB_DELETION_DELAY)")
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("MLGATE_TLS_CERT", ""),
		"PEM certificate chain: serve HTTPS, with --tls-key (MLGATE_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("MLGATE_TLS_KEY", ""),
		"PEM private key of --tls-cert (MLGATE_TLS_KEY)")
	addConfigFlag(fs, c)
	return func() error {
		if envErr != nil {
			return envErr
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			return errors.New("serve: --tls-cert and --tls-key go together: give both (or MLGATE_TLS_CERT and MLGATE_TLS_KEY), or neither")
		}
		if c.SweepGrace < minSweepGrace || c.SweepMultipartGrace < minSweepGrace {
			return fmt.Errorf("serve: --sweep-grace and --sweep-multipart-grace must be at least %s: younger garbage may belong to an upload still running", minSweepGrace)
		}
		if c.BlobDeletionDelay < time.Second {
			return errors.New("serve: --blob-deletion-delay must be at least 1s")
		}
		if c.MaxConcurrentUploads < 0 || c.BodyReadTimeout < 0 {
			return errors.New("serve: --max-concurrent-uploads and --body-read-timeout must not be negative")
		}
		c.MaxFileSize = int64(size)
		return c.loadFile(explicitFlags(fs))
	}
}
