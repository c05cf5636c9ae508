package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/pgstore"
)

// The metadata store types of the config file's metadata.type.
const (
	metadataBolt     = "bolt"
	metadataPostgres = "postgres"
)

// metadataDSNEnv sets the PostgreSQL DSN outside the config file, so that its password stays out of it.
// It overrides metadata.dsn, and on its own (no metadata section, or one without a type) selects
// PostgreSQL.
const metadataDSNEnv = "MLGATE_METADATA_DSN"

// pgOpenTimeout bounds connecting to PostgreSQL and migrating its schema at start, so that a server that
// does not answer (a firewall dropping packets) fails the start instead of hanging it.
const pgOpenTimeout = 30 * time.Second

// readmeReplicas is where the README explains PostgreSQL, replicas and their backups.
const readmeReplicas = `README, "Running several replicas"`

// errPostgresBackup is what backup and restore say with a PostgreSQL store.
var errPostgresBackup = errors.New("the metadata store is PostgreSQL, whose backups are PostgreSQL's own: " +
	"pg_dump (or pg_basebackup with WAL archiving for point-in-time recovery) and their restore tools; " +
	"mlgate backup and restore copy a bbolt store only (see " + readmeReplicas + ")")

// metadataConfig is the resolved choice of metadata store.
type metadataConfig struct {
	Type string // metadataBolt or metadataPostgres
	DSN  string // PostgreSQL's; empty for bbolt
}

// validate checks the file's section on its own: a known type, and no DSN for bbolt. A postgres type
// without a DSN is checked by resolveMetadata, as MLGATE_METADATA_DSN may give it. Errors wrap ErrConfig.
func (m *metadataSpec) validate() error {
	if m == nil {
		return nil
	}
	switch m.Type {
	case "", metadataPostgres:
		return nil
	case metadataBolt:
		if m.DSN != "" {
			return fmt.Errorf("%w: metadata.dsn is given but metadata.type is bolt: remove the dsn, or set type: postgres", ErrConfig)
		}
		return nil
	default:
		return fmt.Errorf("%w: metadata.type %q: want bolt (the default) or postgres", ErrConfig, m.Type)
	}
}

// resolveMetadata combines the file's metadata section (fc may be nil) with MLGATE_METADATA_DSN, read
// through getenv: the variable overrides metadata.dsn and on its own selects PostgreSQL; no type and no
// DSN anywhere is bbolt. Errors wrap ErrConfig: the variable set with type: bolt, PostgreSQL without a DSN,
// or a DSN with no type when the file gives none (type is then implied: postgres).
func resolveMetadata(fc *fileConfig, getenv func(string) string) (metadataConfig, error) {
	var spec metadataSpec
	if fc != nil && fc.Metadata != nil {
		spec = *fc.Metadata
		if err := spec.validate(); err != nil {
			return metadataConfig{}, err
		}
	}
	env := getenv(metadataDSNEnv)
	switch {
	case spec.Type == metadataBolt && env != "":
		return metadataConfig{}, fmt.Errorf("%w: %s is set but the config file's metadata.type is bolt: unset the variable, or set type: postgres",
			ErrConfig, metadataDSNEnv)
	case spec.Type == metadataBolt:
		return metadataConfig{Type: metadataBolt}, nil
	}
	dsn := spec.DSN
	if env != "" {
		dsn = env
	}
	switch {
	case spec.Type == "" && dsn == "":
		return metadataConfig{Type: metadataBolt}, nil
	case dsn == "":
		return metadataConfig{}, fmt.Errorf("%w: metadata.type is postgres but no DSN is given: set metadata.dsn or %s",
			ErrConfig, metadataDSNEnv)
	}
	return metadataConfig{Type: metadataPostgres, DSN: dsn}, nil
}

// metadataConfig resolves the configured store from the loaded file and the environment (see
// resolveMetadata).
func (c *config) metadataConfig() (metadataConfig, error) {
	return resolveMetadata(c.file, os.Getenv)
}

// openMetadata opens the configured metadata store, for every command that needs it. bbolt is
// <data-dir>/mlgate.db, created (with the data dir) when create is set and otherwise required to exist;
// its errors wrap boltstore's (boltstore.ErrLocked when a server holds it). PostgreSQL is connected to and
// migrated, within pgOpenTimeout; its errors name the host, port and database (never the password) and
// wrap pgstore's (metadata.ErrTooNew for a schema newer than this binary). A bad configuration wraps
// ErrConfig.
func openMetadata(ctx context.Context, cfg *config, create bool, log *slog.Logger) (metadata.Store, metadataConfig, error) {
	mc, err := cfg.metadataConfig()
	if err != nil {
		return nil, mc, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if mc.Type == metadataPostgres {
		ctx, cancel := context.WithTimeout(ctx, pgOpenTimeout)
		defer cancel()
		opts := []pgstore.Option{pgstore.WithLogger(log)}
		if cfg.metrics != nil {
			opts = append(opts, pgstore.WithTxObserver(cfg.metrics.pgTx))
		}
		store, err := pgstore.Open(ctx, mc.DSN, opts...)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w (no answer within %s)", err, pgOpenTimeout)
			}
			return nil, mc, fmt.Errorf("metadata: PostgreSQL (metadata.dsn or %s): %w", metadataDSNEnv, err)
		}
		if cfg.metrics != nil {
			cfg.metrics.pgStore(store)
		}
		return store, mc, nil
	}
	if create {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, mc, fmt.Errorf("data dir: %w", err)
		}
	} else if _, err := os.Stat(cfg.dbPath()); err != nil {
		return nil, mc, fmt.Errorf("no mlgate database at %s (wrong --data-dir?): %w", cfg.dbPath(), err)
	}
	opts := []boltstore.Option{boltstore.WithLogger(log), boltstore.WithTimeout(2 * time.Second)}
	if cfg.metrics != nil {
		opts = append(opts, boltstore.WithCommitObserver(cfg.metrics.commit))
	}
	store, err := boltstore.Open(cfg.dbPath(), opts...)
	if err != nil {
		return nil, mc, fmt.Errorf("metadata %s: %w", cfg.dbPath(), err)
	}
	return store, mc, nil
}

// checkSharedBackends refuses, with the PostgreSQL store, any localfs backend (the embedded default
// included): replicas share the metadata, so a file one replica wrote to its own disk would be a row
// every other replica finds without its blob, and localfs keeps multipart uploads' state in its process.
// Plugins are not checked: what they store is theirs to say. Errors wrap ErrConfig.
func checkSharedBackends(mc metadataConfig, specs []backendSpec, fromFile bool) error {
	if mc.Type != metadataPostgres {
		return nil
	}
	for _, s := range specs {
		if s.Plugin != nil || s.Type != "localfs" {
			continue
		}
		what := fmt.Sprintf("backend %q is localfs", s.Name)
		if !fromFile {
			what = "the config declares no backends, so the default is localfs at <data-dir>/blobs"
		}
		return fmt.Errorf("%w: the metadata store is PostgreSQL, which replicas share, but %s: another replica "+
			"could not read the files it stores, and localfs keeps multipart upload state per process. "+
			"Declare S3 or MinIO backends (type: s3 or minio) in the config file (see %s)", ErrConfig, what, readmeReplicas)
	}
	return nil
}
