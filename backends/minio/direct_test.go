package minio_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/mlgate/mlgate/backends/s3test"
)

// TestDirectGet runs the shared direct-get checks on each server, with the backend opened twice under
// one fresh prefix: with direct gets (the default) and with DisableDirectGet.
func TestDirectGet(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		cfg := config(s)
		cfg.Prefix = "minio-direct-test/" + hex.EncodeToString(raw[:])
		direct := open(t, cfg)
		cfg.DisableDirectGet = true
		s3test.RunDirectGet(t, direct, open(t, cfg))
	})
}

// TestChecksumPut runs the shared checks of uploads with a known sha256, with checksum puts on (the
// default) and off.
func TestChecksumPut(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		cfg := config(s)
		cfg.Prefix = "minio-checksum-test/" + hex.EncodeToString(raw[:]) + "/"
		checksummed := open(t, cfg)
		cfg.DisableChecksumPut = true
		s3test.RunChecksumPut(t, s, cfg.Prefix, checksummed, open(t, cfg))
	})
}
