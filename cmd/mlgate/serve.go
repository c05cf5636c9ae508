package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/diskspace"
	"github.com/mlgate/mlgate/cmd/mlgate/internal/firstbyte"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/metadata"
)

// storage is the opened metadata store and blob backends of a data dir, wired the same way for serve,
// fsck and the backends commands.
type storage struct {
	store metadata.Store
	meta  metadataConfig // which store it is
	mu    sync.Mutex     // guards set, which the sweeper reads while serve swaps it
	set   *backendSet    // the configured backends; serve swaps it on SIGHUP
}

// openStorage opens the configured metadata store (see openMetadata: bbolt under cfg.DataDir by default,
// or PostgreSQL) and the configured backends (the embedded default: localfs at <data-dir>/blobs, named
// "local"). It fails fast, with a clear message, when another mlgate holds the bbolt database, when
// PostgreSQL cannot be reached, when a backend cannot be opened, and (wrapping ErrConfig) when a localfs
// backend is configured with PostgreSQL (see checkSharedBackends).
func openStorage(ctx context.Context, cfg *config, log *slog.Logger) (*storage, error) {
	mc, err := cfg.metadataConfig()
	if err != nil {
		return nil, err
	}
	specs, def := cfg.backendSpecs()
	if err := checkSharedBackends(mc, specs, cfg.file != nil && len(cfg.file.Backends) > 0); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	store, mc, err := openMetadata(ctx, cfg, true, log)
	if err != nil {
		return nil, err
	}
	set, err := openBackendSet(ctx, specs, def, cfg.routes(), nil, cfg.metrics, log)
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	return &storage{store: store, meta: mc, set: set}, nil
}

// Close closes metadata first (so a later open sees a consistent file), then blobs.
func (s *storage) Close() error {
	return errors.Join(s.store.Close(), s.set.release())
}

// newLogger builds the structured logger serve writes to stderr.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
}

// checkListenAddr refuses an address other machines can reach (empty host, 0.0.0.0, ::, or any
// non-loopback address) unless the server requires tokens or the operator opted out explicitly. A host name
// counts as loopback only if every address it resolves to is.
func checkListenAddr(cfg *config) error {
	if cfg.Auth || cfg.InsecureListenAny {
		return nil
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return fmt.Errorf("--addr %q: %w", cfg.Addr, err)
	}
	if isLoopbackAddr(cfg.Addr) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without authentication: that address is reachable from other "+
		"machines, and anyone could read and overwrite every model. Use --auth (with tokens from "+
		"\"mlgate token create\"), listen on 127.0.0.1, or pass --insecure-listen-any if a proxy or firewall "+
		"protects this port", cfg.Addr)
}

// isLoopbackAddr reports whether HOST:PORT is reachable only from this machine: a loopback IP, or a
// host name all of whose addresses are loopback. An empty host, 0.0.0.0, :: and anything unparsable
// are not.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
	loopback := err == nil && len(ips) > 0
	for _, ip := range ips {
		loopback = loopback && ip.IP.IsLoopback()
	}
	return loopback
}

// defineServe is the serve command: its flags, then serve.
func defineServe(fs *flag.FlagSet) runFunc {
	cfg := &config{}
	finish := defineServeFlags(fs, cfg)
	return func(ctx context.Context, _ *flag.FlagSet, _, stderr io.Writer) error {
		if err := finish(); err != nil {
			return err
		}
		return serve(ctx, cfg, stderr)
	}
}

// serve runs the gateway until ctx is cancelled (SIGINT, SIGTERM), then shuts down gracefully:
// new connections are refused, in-flight transfers finish (up to --shutdown-timeout), then the
// database closes.
func serve(ctx context.Context, cfg *config, stderr io.Writer) error {
	var err error
	if err := checkListenAddr(cfg); err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	if cfg.Auth && cfg.TLSCert == "" && !isLoopbackAddr(cfg.Addr) {
		log.Warn("--auth without TLS on an address other machines reach: tokens would cross the network in clear; "+
			"use --tls-cert and --tls-key, or terminate TLS at a reverse proxy in front of mlgate", "addr", cfg.Addr)
	}
	// Before the plugins start, so that no restart goes uncounted.
	metrics, stopMetrics := newMetrics()
	defer stopMetrics()
	cfg.metrics = metrics
	// A bad key file fails the start before anything is opened.
	secret, secretSource, err := configuredSigningKey(os.Getenv, cfg, log)
	if err != nil {
		return err
	}
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing storage", "err", err)
		}
	}()

	if cfg.Auth {
		if toks, err := st.store.ListTokens(ctx); err == nil && len(toks) == 0 {
			log.Warn("--auth is on but no token exists: every API request will be refused; " +
				"stop the server and run mlgate token create")
		}
	}
	if secret == nil {
		if secret, err = storedSigningKey(ctx, st.store); err != nil {
			return err
		}
		secretSource = "store"
	}
	reserve, err := diskspace.Open(cfg.DataDir, diskspace.DefaultSize, log)
	if err != nil {
		return err
	}
	defer reserve.Close()
	gw := gateway.NewWithStorage(gateway.Config{
		MaxFileSize:          cfg.MaxFileSize,
		BlobDeletionDelay:    cfg.BlobDeletionDelay,
		Auth:                 cfg.Auth,
		Metrics:              metrics.handler,
		Observer:             metrics,
		MaxConcurrentUploads: cfg.MaxConcurrentUploads,
		BodyReadTimeout:      cfg.BodyReadTimeout,
		Space:                reserve,
		Signing:              secret,
	}, st.store, st.set.storage, log)
	srv := &http.Server{
		Handler: gw.Handler(),
		// A client that trickles its request line and headers (slow-loris) holds its connection for this
		// long at most; any real client sends them at once.
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    gateway.MaxHeaderBytes,
		// No ReadTimeout (nor WriteTimeout): it bounds the whole request, body included, and would cut a
		// multi-GB upload on a slow link however steadily it progresses. Bodies are bounded by their
		// progress instead (--body-read-timeout, see gateway.Config.BodyReadTimeout).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	tcp, err := (&net.ListenConfig{Control: largeSendBuffer}).Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	// A new connection waits for its first request as long as a kept-alive one waits for its next
	// (IdleTimeout), not ReadHeaderTimeout: clients that dial ahead of need would otherwise find their
	// pooled connection closed under them (see firstbyte).
	ln := firstbyte.New(tcp, srv.IdleTimeout)
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	log.Info("mlgate listening", "addr", ln.Addr().String(), "scheme", scheme, "data_dir", cfg.DataDir, "metadata", st.meta.Type,
		"version", buildVersion(), "max_file_size", cfg.MaxFileSize, "auth", cfg.Auth,
		"max_concurrent_uploads", cfg.MaxConcurrentUploads, "body_read_timeout", cfg.BodyReadTimeout,
		"backends", st.set.order, "default_backend", st.set.def, "routes", len(cfg.routes()),
		// The key's fingerprint, never the key: replicas that log one id share the key.
		"signing_key", secretSource, "signing_key_id", secret.ID())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	served := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			// The first byte firstbyte waits for is the TLS ClientHello's.
			served <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
			return
		}
		served <- srv.Serve(ln)
	}()
	sweepCtx, stopSweeper := context.WithCancel(ctx)
	sweeperDone := make(chan struct{})
	go func() {
		defer close(sweeperDone)
		runSweeper(sweepCtx, cfg, st, gw, metrics, log)
	}()
	deletionsDone := make(chan struct{})
	go func() {
		defer close(deletionsDone)
		gw.RunBlobDeletions(sweepCtx)
	}()
	defer func() {
		stopSweeper()
		<-sweeperDone
		<-deletionsDone
	}()
wait:
	for {
		select {
		case err := <-served:
			return err
		case <-ctx.Done():
			break wait
		case <-hup:
			reload(ctx, cfg, st, gw, log)
		}
	}
	log.Info("shutting down: waiting for in-flight requests", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown timed out; closing remaining connections", "err", err)
		_ = srv.Close()
	}
	log.Info("stopped")
	return nil
}

// reload re-reads the config file on SIGHUP and swaps in its backends and routes. Requests already
// running finish on the storage they started with: the gateway counts them per storage generation, and
// the previous set is released (closing the backends the new config dropped or changed) only once its
// last request is done. A broken file changes nothing. Basic settings (address, data dir, limits, auth)
// need a restart.
func reload(ctx context.Context, cfg *config, st *storage, gw *gateway.Server, log *slog.Logger) {
	if cfg.ConfigFile == "" {
		log.Warn("SIGHUP ignored: mlgate runs without --config, there is nothing to reload")
		return
	}
	fc, err := readFileConfig(cfg.ConfigFile, backendTypes())
	if err != nil {
		log.Error("config reload failed; keeping the running configuration", "err", err)
		return
	}
	if cfg.file != nil && fc.basics() != cfg.file.basics() {
		log.Warn("config reload: basic settings changed in the file; they take effect on restart only")
	}
	next := *cfg
	next.file = fc
	specs, def := next.backendSpecs()
	if err := checkSharedBackends(st.meta, specs, len(fc.Backends) > 0); err != nil {
		log.Error("config reload failed; keeping the running configuration", "err", err)
		return
	}
	set, err := openBackendSet(ctx, specs, def, next.routes(), st.set, cfg.metrics, log)
	if err != nil {
		log.Error("config reload failed; keeping the running configuration", "err", err)
		return
	}
	// The new set becomes current before the gateway's storage does, so that the sweeper never holds a
	// generation whose set it does not see (see runSweeper).
	st.mu.Lock()
	old := st.set
	st.set = set
	st.mu.Unlock()
	drained := gw.SwapStorage(set.storage)
	cfg.file = fc
	log.Info("config reloaded", "backends", set.order, "default_backend", set.def, "routes", len(fc.Routes))
	go func() {
		<-drained
		if err := old.release(); err != nil {
			log.Warn("closing backends of the previous config", "err", err)
		}
	}()
}
