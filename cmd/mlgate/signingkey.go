package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
)

// signingKeyEnv holds the signing secret as text (see signing.Decode); it wins over signing_key_file.
const signingKeyEnv = "MLGATE_SIGNING_KEY"

// maxSigningKeyFile bounds what is read of a signing_key_file: a key is a few dozen bytes, and a path
// pointing at something else (a log, a device) must fail rather than be read whole.
const maxSigningKeyFile = 4 << 10

// configuredSigningKey returns the signing secret the configuration gives and where it came from:
// MLGATE_SIGNING_KEY (read through getenv) first, as environment variables win over the file, then the
// file config's signing_key_file (relative paths are relative to the working directory, as in the rest
// of the file). Neither set is (nil, "", nil): the store keeps one. Errors wrap ErrConfig and name the
// variable or the file, never the value. A key file that other users may read is logged as a warning.
func configuredSigningKey(getenv func(string) string, cfg *config, log *slog.Logger) (*signing.Secret, string, error) {
	if text := getenv(signingKeyEnv); text != "" {
		s, err := signing.Decode(text)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %w", ErrConfig, signingKeyEnv, err)
		}
		return s, signingKeyEnv, nil
	}
	if cfg.file == nil || cfg.file.SigningKeyFile == "" {
		return nil, "", nil
	}
	path := cfg.file.SigningKeyFile
	where := fmt.Sprintf("config %s: signing_key_file %s", cfg.ConfigFile, path)
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrConfig, where, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrConfig, where, err)
	}
	if !info.Mode().IsRegular() || info.Size() > maxSigningKeyFile {
		return nil, "", fmt.Errorf("%w: %s: not a key file (want a regular file of at most %d bytes)", ErrConfig, where, maxSigningKeyFile)
	}
	buf := make([]byte, info.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrConfig, where, err)
	}
	s, err := signing.Decode(string(buf))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %w", ErrConfig, where, err)
	}
	if info.Mode().Perm()&0o077 != 0 && log != nil {
		log.Warn("signing_key_file can be read by other users: restrict it (chmod 600)", "file", path, "mode", info.Mode().Perm().String())
	}
	return s, "signing_key_file " + path, nil
}

// storedSigningKey is the secret the store keeps, for a configuration that gives none: drawn by the first
// start on an empty store, then the same for every replica and restart. Errors are the store's, wrapped.
func storedSigningKey(ctx context.Context, store metadata.Store) (*signing.Secret, error) {
	raw, err := store.SigningKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	s, err := signing.New(raw)
	if err != nil {
		return nil, fmt.Errorf("metadata: stored %w", err)
	}
	return s, nil
}
