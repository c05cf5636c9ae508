package artifact_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/gateway/gatewaytest"

	"github.com/mlgate/mlgate/gateway"
)

// TestReplacedBlobOutlivesItsDownload: a two-range download that is halfway through its first range
// when the file is replaced still gets the old bytes for both ranges (ServeContent opens the blob again
// for the second), and the old blob is deleted once it ends.
func TestReplacedBlobOutlivesItsDownload(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	url := env.PkgURL("m/1.0.0/files/big.bin")
	const half = 8 << 20
	old := make([]byte, 2*half)
	_, _ = rand.Read(old)
	gatewaytest.WantStatus(t, env.Put(url, old), http.StatusCreated)
	oldKeys := env.BlobKeys()

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	// Not adjacent: the reader seeks, and so opens the blob again, for the second range.
	req.Header.Set("Range", "bytes=0-8388607,8388708-16777215")
	resp, err := env.Srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	part, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1<<20) // the server is still writing the first range: the rest fills no buffer
	if _, err := io.ReadFull(part, first); err != nil {
		t.Fatal(err)
	}

	newer := bytes.Repeat([]byte("n"), 1000)
	gatewaytest.WantStatus(t, env.Put(url, newer), http.StatusCreated)
	if r := env.Get(url); string(r.Body) != string(newer) {
		t.Fatalf("after the replacement a new download gets %d bytes", len(r.Body))
	}

	rest, err := io.ReadAll(part)
	if err != nil {
		t.Fatal(err)
	}
	got := append(first, rest...)
	part, err = mr.NextPart()
	if err != nil {
		t.Fatalf("second range: %v", err)
	}
	second, err := io.ReadAll(part)
	if err != nil {
		t.Fatalf("second range: %v", err)
	}
	if !bytes.Equal(got, old[:half]) || !bytes.Equal(second, old[half+100:]) {
		t.Fatalf("the download got %d + %d bytes, not the old ones", len(got), len(second))
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("after the second range: %v", err)
	}
	resp.Body.Close()

	poll.Until(t, 5*time.Second, "the old blob's deletion after the download ended", func() bool {
		keys := env.BlobKeys()
		return len(keys) == 1 && keys[0] != oldKeys[0]
	})
}
