//go:build reliability

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// Sizes of the MinIO fault test. The transfers in flight at the kill are far larger than every
// buffer between the client and MinIO (socket buffers on both hops, a splice pipe), so that the kill
// lands in their middle, not after MinIO has handed over every byte.
const (
	minioBigFile     = 128 << 20
	minioReadFirst   = 8 << 20  // what the in-flight download reads before the kill
	minioWriteFirst  = 32 << 20 // what the in-flight upload sends before the kill
	minioSmallFile   = 1 << 20
	minioFaultWaitUp = 60 * time.Second // bound on each wait for an answer around the outage
)

// TestReliabilityMinIOStoppedMidTransfer runs mlgate on a minio backend against a MinIO of its own,
// starts a 128 MB download and a 128 MB upload, and kills MinIO (SIGKILL) in the middle of both. It
// asserts that the upload in flight is answered 503 with Retry-After, that the download in flight
// ends short of its Content-Length with an error (cut detectably, never a complete-looking body),
// that new downloads and uploads are answered 503 with Retry-After while listings still work and
// show no partial file. Then it starts MinIO again on the same address and data dir and asserts
// that, without restarting mlgate, the old files download whole, the interrupted upload and a new
// one succeed, and that fsck then finds the store clean (or clean after removing crash leftovers).
func TestReliabilityMinIOStoppedMidTransfer(t *testing.T) {
	m, dir, cfg := ownMinioConfig(t)
	dataDir := filepath.Join(dir, "data")
	p, logs := startServeWatched(t, dataDir, "--config", cfg, "--log-level", "warn")
	hc := newPoolClient(8)
	ctx := context.Background()
	fileURL := func(name string) string { return pkgURL(p.base, "faults/minio", "m", "1.0.0", name) }

	sums := map[string]string{}
	sizes := map[string]int64{"small.bin": minioSmallFile, "big.bin": minioBigFile}
	for i, name := range []string{"small.bin", "big.bin"} {
		sum, err := uploadGen(ctx, hc, fileURL(name), uint64(i+1), sizes[name])
		if err != nil {
			t.Fatal(err)
		}
		sums[name] = sum
	}

	// The download in flight: headers and the first 8 MB, then the test stops reading.
	dctx, dcancel := context.WithTimeout(ctx, minioFaultWaitUp)
	defer dcancel()
	dreq, _ := http.NewRequestWithContext(dctx, http.MethodGet, fileURL("big.bin"), nil)
	dresp, err := hc.Do(dreq)
	if err != nil {
		t.Fatal(err)
	}
	defer dresp.Body.Close()
	if dresp.StatusCode != http.StatusOK || dresp.ContentLength != minioBigFile {
		t.Fatalf("download before the outage: %s, Content-Length %d", dresp.Status, dresp.ContentLength)
	}
	if _, err := io.CopyN(io.Discard, dresp.Body, minioReadFirst); err != nil {
		t.Fatalf("download before the outage: %v", err)
	}

	// The upload in flight: its first 32 MB, then the rest once MinIO is dead.
	up := startPipedUpload(ctx, hc, fileURL("inflight.bin"), 3, minioBigFile)
	if err := up.send(minioWriteFirst); err != nil {
		t.Fatalf("upload before the outage: %v", err)
	}

	m.kill()

	go up.sendRest()
	select {
	case res := <-up.result:
		if res.err != nil {
			t.Fatalf("upload in flight when MinIO died: no answer: %v", res.err)
		}
		if res.status != http.StatusServiceUnavailable || res.retryAfter == "" {
			t.Fatalf("upload in flight when MinIO died: %d (Retry-After %q) %s; want 503 with Retry-After", res.status, res.retryAfter, res.body)
		}
	case <-time.After(minioFaultWaitUp):
		t.Fatal("upload in flight when MinIO died: no answer")
	}

	n, _, err := readHashed(dresp.Body)
	if err == nil || minioReadFirst+n >= minioBigFile {
		t.Fatalf("download in flight when MinIO died: ended with %v after %d of %d bytes; want an error short of Content-Length",
			err, minioReadFirst+n, minioBigFile)
	}
	t.Logf("download in flight was cut after %d of %d bytes: %v", minioReadFirst+n, minioBigFile, err)

	// New requests while MinIO is down.
	for _, name := range []string{"small.bin", "big.bin"} {
		expect503(t, hc, http.MethodGet, fileURL(name), nil)
	}
	expect503(t, hc, http.MethodPut, fileURL("new.bin"), newGenBody(4, minioSmallFile))
	expectListing(t, hc, pkgURL(p.base, "faults/minio", "m", "1.0.0", ""), sizes, sums)
	if code, _ := get(t, fileURL("inflight.bin")); code != http.StatusNotFound {
		t.Fatalf("the interrupted upload answers %d, want 404", code)
	}

	m.start()
	// minio-go's pooled connections died with MinIO: the first requests after the restart may go to
	// them, so wait for a download to succeed, then require everything else to.
	poll.UntilOK(t, 60*time.Second, "mlgate to serve from the restarted MinIO", func() error {
		return downloadCheck(ctx, hc, fileURL("small.bin"), minioSmallFile, sums["small.bin"])
	})
	if err := downloadCheck(ctx, hc, fileURL("big.bin"), minioBigFile, sums["big.bin"]); err != nil {
		t.Fatalf("after MinIO came back: %v", err)
	}
	for i, name := range []string{"inflight.bin", "new.bin"} {
		sizes[name] = 16 << 20
		sum, err := uploadGen(ctx, hc, fileURL(name), uint64(10+i), sizes[name])
		if err != nil {
			t.Fatalf("after MinIO came back: %v", err)
		}
		sums[name] = sum
		if err := downloadCheck(ctx, hc, fileURL(name), sizes[name], sum); err != nil {
			t.Fatalf("after MinIO came back: %v", err)
		}
	}
	expectListing(t, hc, pkgURL(p.base, "faults/minio", "m", "1.0.0", ""), sizes, sums)
	t.Logf("mlgate's warnings and errors during the test:\n%s", logs)

	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if n := fsckAfterCrash(t, "--data-dir", dataDir, "--config", cfg); n > 0 {
		t.Logf("fsck --repair removed %d leftovers of the interrupted upload", n)
	}
}

// expect503 sends one request and asserts a 503 with a Retry-After header: storage is down.
func expect503(t *testing.T, hc *http.Client, method, u string, body io.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), minioFaultWaitUp)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, u, body)
	if g, ok := body.(*genBody); ok {
		req.ContentLength = g.left
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s while MinIO is down: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%s %s while MinIO is down: %s (Retry-After %q) %s; want 503 with Retry-After",
			method, u, resp.Status, resp.Header.Get("Retry-After"), b)
	}
}

// expectListing asserts that the version's listing is exactly the files of sizes, with their sums.
func expectListing(t *testing.T, hc *http.Client, u string, sizes map[string]int64, sums map[string]string) {
	t.Helper()
	files, err := listFiles(context.Background(), hc, u, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %d %s", f.Path, f.Size, f.SHA256))
	}
	for name, size := range sizes {
		want = append(want, fmt.Sprintf("%s %d %s", name, size, sums[name]))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listing:\n%v\nwant:\n%v", got, want)
	}
}

// pipedUpload is an upload whose body the test sends in steps, so that it can stop MinIO in the
// middle.
type pipedUpload struct {
	pw     *io.PipeWriter
	gen    *genBody
	result chan uploadAnswer
}

type uploadAnswer struct {
	status     int
	retryAfter string
	body       []byte
	err        error
}

// startPipedUpload starts a PUT of the genBody of seed and size to u; nothing is sent until send.
func startPipedUpload(ctx context.Context, hc *http.Client, u string, seed uint64, size int64) *pipedUpload {
	pr, pw := io.Pipe()
	up := &pipedUpload{pw: pw, gen: newGenBody(seed, size), result: make(chan uploadAnswer, 1)}
	ctx, cancel := context.WithTimeout(ctx, minioFaultWaitUp*2)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, pr)
	req.ContentLength = size
	go func() {
		defer cancel()
		resp, err := hc.Do(req)
		if err != nil {
			up.result <- uploadAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		up.result <- uploadAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b}
	}()
	return up
}

// send writes the body's next n bytes; it returns once the client's transport has taken them.
func (u *pipedUpload) send(n int64) error {
	_, err := io.CopyN(u.pw, u.gen, n)
	return err
}

// sendRest writes the rest of the body, stopping at the first error: the transport closes the pipe
// once the server has answered.
func (u *pipedUpload) sendRest() {
	_, err := io.Copy(u.pw, u.gen)
	u.pw.CloseWithError(err)
}
