package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/gateway"
)

// age sets the modification time of the files at paths to ago before now: the sweeper's clock for
// staging files, multipart uploads and blobs is their age on disk.
func age(t *testing.T, ago time.Duration, paths ...string) {
	t.Helper()
	when := time.Now().Add(-ago)
	for _, p := range paths {
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSweeperRemovesGarbageButNotABlobBeingRead drives one sweep of a gateway on the default localfs
// backend: it removes a staging leftover, an unreferenced blob and a multipart upload older than
// their grace periods, keeps their younger twins, and keeps the old blob of a replaced file that a slow
// download still reads, which the download then finishes whole and whose deletion follows.
func TestSweeperRemovesGarbageButNotABlobBeingRead(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	cfg := &config{DataDir: dataDir, SweepGrace: time.Hour, SweepMultipartGrace: 24 * time.Hour}
	metrics, stopMetrics := newMetrics()
	defer stopMetrics()
	cfg.metrics = metrics
	log := slog.New(slog.DiscardHandler)
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gw := gateway.NewWithStorage(gateway.Config{}, st.store, st.set.storage, log)
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	local := st.set.insts["local"].b
	blobPath := func(key string) string { return filepath.Join(cfg.blobRoot(), filepath.FromSlash(key)) }
	present := func(key string) bool {
		_, err := local.Stat(ctx, key)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	// A file big enough that its download blocks on the socket buffers while the test does not read.
	fileURL := srv.URL + "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files/model.bin"
	v1 := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	if code := put(t, fileURL, v1); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	items, _, err := local.List(ctx, blobkey.FilePrefix, "", 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("blobs after the upload: %v %v", items, err)
	}
	readKey := items[0].Key
	resp, err := http.Get(fileURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if code := put(t, fileURL, []byte("version two")); code != http.StatusCreated {
		t.Fatalf("replacing upload: %d", code)
	}
	// The replaced blob has no row now, and looks as old as garbage.
	age(t, 2*time.Hour, blobPath(readKey))

	orphan, youngOrphan := blobkey.File(77), blobkey.File(78)
	for _, key := range []string{orphan, youngOrphan} {
		if _, err := local.Put(ctx, key, strings.NewReader("orphan"), 6, backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	age(t, 2*time.Hour, blobPath(orphan))

	staging := filepath.Join(cfg.blobRoot(), ".staging")
	oldStaging, youngStaging := filepath.Join(staging, "put-0000000000000001"), filepath.Join(staging, "put-0000000000000002")
	for _, p := range []string{oldStaging, youngStaging} {
		if err := os.WriteFile(p, []byte("half an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	age(t, 2*time.Hour, oldStaging)

	mpKey, youngMPKey := blobkey.File(90), blobkey.File(91)
	abandoned, err := local.CreateMultipart(ctx, mpKey, backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running, err := local.CreateMultipart(ctx, youngMPKey, backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uploadDir := filepath.Join(cfg.blobRoot(), ".uploads", abandoned)
	age(t, 48*time.Hour, filepath.Join(uploadDir, "upload.json"), uploadDir)
	// Older than the staging grace, younger than the multipart one: its client may still send parts.
	runningDir := filepath.Join(cfg.blobRoot(), ".uploads", running)
	age(t, 2*time.Hour, filepath.Join(runningDir, "upload.json"), runningDir)

	sweepOnce(ctx, cfg, st, gw, metrics, log)

	if present(orphan) || !present(youngOrphan) {
		t.Errorf("after the sweep: old orphan present %v (want false), young orphan present %v (want true)", present(orphan), present(youngOrphan))
	}
	if !present(readKey) {
		t.Fatal("the sweep removed the blob a download is reading")
	}
	if _, err := os.Stat(oldStaging); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old staging leftover: %v, want it gone", err)
	}
	if _, err := os.Stat(youngStaging); err != nil {
		t.Errorf("young staging file: %v, want it kept", err)
	}
	if _, err := local.ListParts(ctx, mpKey, abandoned); !errors.Is(err, backends.ErrUploadNotFound) {
		t.Errorf("abandoned multipart upload: %v, want it gone", err)
	}
	if _, err := local.ListParts(ctx, youngMPKey, running); err != nil {
		t.Errorf("running multipart upload: %v, want it kept", err)
	}
	scrape := httptest.NewServer(metrics.handler)
	defer scrape.Close()
	samples := metricSamples(t, scrape.URL, nil)
	for _, kind := range []string{"unreferenced_blob", "staging_leftover", "multipart_upload"} {
		wantSample(t, samples, "mlgate_sweeper_removed_total", `^mlgate_sweeper_removed_total\{backend="local",kind="`+kind+`"\} 1$`)
	}

	// The download finishes on the old bytes, then the replaced blob's deletion runs.
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha256.Sum256(append(first, rest...)), sha256.Sum256(v1); got != want {
		t.Fatalf("the slow download got %d bytes that differ from the file it started on", 1+len(rest))
	}
	resp.Body.Close()
	poll.UntilOK(t, 10*time.Second, "the replaced blob to be deleted after its download", func() error {
		if present(readKey) {
			return fmt.Errorf("blob %s still present", readKey)
		}
		return nil
	})
}

// TestServeRunsTheSweeper: a serve with a short --sweep-interval removes a staging leftover older than
// --sweep-grace by itself, logs it and counts it on /metrics.
func TestServeRunsTheSweeper(t *testing.T) {
	dataDir := t.TempDir()
	staging := filepath.Join(dataDir, "blobs", ".staging")
	if err := os.MkdirAll(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(staging, "put-00000000000000aa")
	if err := os.WriteFile(leftover, []byte("a crash's leftover"), 0o600); err != nil {
		t.Fatal(err)
	}
	age(t, 3*time.Hour, leftover)
	p, logs := startServeWatched(t, dataDir, "--sweep-interval", "100ms", "--sweep-grace", "2h")
	waitForLog(t, logs, "sweeper removed a staging leftover")
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover after the sweep: %v", err)
	}
	wantSample(t, metricSamples(t, p.base, nil), "mlgate_sweeper_removed_total",
		`^mlgate_sweeper_removed_total\{backend="local",kind="staging_leftover"\} 1$`)
	if code, out := runCmd(t, "serve", "--sweep-grace", "0s"); code == 0 || !strings.Contains(out, "--sweep-grace") {
		t.Fatalf("serve --sweep-grace 0s: exit %d, %s; want a refusal naming the flag", code, out)
	}
}
