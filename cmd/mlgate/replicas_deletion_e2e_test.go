package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/s3test"
)

// TestReplicaStreamOutlivesReplacement: a file replaced through replica A while replica B streams it.
// The old blob's deletion is queued in PostgreSQL with a 2 s delay; B, still streaming, extends it (its
// lease) past the time it would have been due, the old object stays in MinIO, and B's stream ends with
// every old byte. Once the stream ends, a replica deletes the old blob, and both serve the new bytes.
func TestReplicaStreamOutlivesReplacement(t *testing.T) {
	mio := s3test.Lookup(t, "minio")
	dsn := pgEmptySchema(t)
	prefix := fmt.Sprintf("replace-%x/", randBytes(6))
	cfg := writeConfig(t, fmt.Sprintf(`metadata: {type: postgres, dsn: %q}
backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, dsn, mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv))
	a := startServe(t, t.TempDir(), "--config", cfg, "--blob-deletion-delay", "2s")
	b := startServe(t, t.TempDir(), "--config", cfg, "--blob-deletion-delay", "2s")

	old := randBytes(32 << 20)
	if code := put(t, projectFileURL(a, "team", "w.bin"), old); code != 201 {
		t.Fatalf("upload through A: %d", code)
	}
	before := s3test.Keys(t, mio, prefix)
	if len(before) != 1 {
		t.Fatalf("objects after the upload: %v", before)
	}

	// B starts streaming and stops reading after 64 KiB: the rest waits in B's copy loop, its blob open.
	resp, err := http.Get(projectFileURL(b, "team", "w.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, head); err != nil || resp.StatusCode != 200 {
		t.Fatalf("B's download: %d %v", resp.StatusCode, err)
	}

	newer := randBytes(1 << 20)
	if code := put(t, projectFileURL(a, "team", "w.bin"), newer); code != 201 {
		t.Fatalf("replace through A: %d", code)
	}
	if _, got := get(t, projectFileURL(a, "team", "w.bin")); sha256.Sum256(got) != sha256.Sum256(newer) {
		t.Fatal("A serves the old bytes after the replacement")
	}

	// The deletion is queued; wait until B has extended it beyond the time it was first due, and that
	// time has passed.
	queuedAt := func() (time.Time, bool) {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var nb time.Time
		err = conn.QueryRow(t.Context(), `SELECT not_before FROM blob_deletions WHERE blob_key = $1`, before[0][len(prefix):]).Scan(&nb)
		if err == pgx.ErrNoRows {
			return time.Time{}, false
		} else if err != nil {
			t.Fatal(err)
		}
		return nb, true
	}
	first, ok := queuedAt()
	if !ok {
		t.Fatal("the old blob's deletion is not queued")
	}
	poll.UntilOK(t, 30*time.Second, "B to extend the deletion past its first due time, and that time to pass", func() error {
		nb, ok := queuedAt()
		if !ok {
			return fmt.Errorf("the deletion left the queue while B streams (first due %v)", first)
		}
		if !nb.After(first) || time.Now().Before(first.Add(time.Second)) {
			return fmt.Errorf("due %v (first %v), now %v", nb, first, time.Now())
		}
		return nil
	})
	if keys := s3test.Keys(t, mio, prefix); !slices.Contains(keys, before[0]) {
		t.Fatalf("the old object is gone while B streams it: %v", keys)
	}

	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("B's stream broke: %v", err)
	}
	if got := append(head, rest...); sha256.Sum256(got) != sha256.Sum256(old) {
		t.Fatalf("B streamed %d bytes that are not the old file", len(got))
	}
	resp.Body.Close()

	poll.UntilOK(t, 30*time.Second, "the old blob's deletion once B's stream ended", func() error {
		if keys := s3test.Keys(t, mio, prefix); len(keys) != 1 || keys[0] == before[0] {
			return fmt.Errorf("objects %v", keys)
		}
		if _, ok := queuedAt(); ok {
			return fmt.Errorf("still queued")
		}
		return nil
	})
	for _, p := range []*proc{a, b} {
		if _, got := get(t, projectFileURL(p, "team", "w.bin")); sha256.Sum256(got) != sha256.Sum256(newer) {
			t.Fatalf("%s serves %d bytes, not the new file", p.base, len(got))
		}
	}
}

// TestFsckBesideReplicas: `mlgate fsck` on PostgreSQL while a replica serves. A stray object younger than
// --grace is spared (it may be an upload in flight); a replaced file's blob, whose deletion is queued, is
// not garbage at any grace; with --grace 0s --repair the stray object is removed and nothing else is.
func TestFsckBesideReplicas(t *testing.T) {
	mio := s3test.Lookup(t, "minio")
	dsn := pgEmptySchema(t)
	prefix := fmt.Sprintf("fsck-%x/", randBytes(6))
	cfg := writeConfig(t, fmt.Sprintf(`metadata: {type: postgres, dsn: %q}
backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, dsn, mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv))
	a := startServe(t, t.TempDir(), "--config", cfg)
	for _, body := range [][]byte{randBytes(1000), randBytes(2000)} { // the second replaces the first
		if code := put(t, projectFileURL(a, "team", "w.bin"), body); code != 201 {
			t.Fatalf("upload: %d", code)
		}
	}
	stray := prefix + "c/999999/0123456789abcdef0123456789abcdef"
	s3test.Put(t, mio, stray, randBytes(10))
	if n := len(s3test.Keys(t, mio, prefix)); n != 3 {
		t.Fatalf("%d objects, want the file's, the replaced one's and the stray one", n)
	}

	code, out := runCmd(t, "fsck", "--config", cfg, "--data-dir", t.TempDir())
	if code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck with the default grace: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "fsck", "--config", cfg, "--data-dir", t.TempDir(), "--grace", "0s")
	if code != 1 || !strings.Contains(out, "unreferenced_blob") || strings.Count(out, "unreferenced_blob") != 1 {
		t.Fatalf("fsck --grace 0s: exit %d, want 1 with the stray object alone\n%s", code, out)
	}
	code, out = runCmd(t, "fsck", "--config", cfg, "--data-dir", t.TempDir(), "--grace", "0s", "--repair")
	if code != 0 || !strings.Contains(out, "repaired\tunreferenced_blob") {
		t.Fatalf("fsck --grace 0s --repair: exit %d\n%s", code, out)
	}
	keys := s3test.Keys(t, mio, prefix)
	if len(keys) != 2 || slices.Contains(keys, stray) {
		t.Fatalf("after the repair: %v, want the file's and the replaced one's", keys)
	}
	if _, got := get(t, projectFileURL(a, "team", "w.bin")); len(got) != 2000 {
		t.Fatalf("the file after the repair: %d bytes", len(got))
	}
}
