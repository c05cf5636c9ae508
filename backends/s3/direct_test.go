package s3_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/connbody"
	"github.com/mlgate/mlgate/backends/s3"
	"github.com/mlgate/mlgate/backends/s3test"
)

// TestDirectGet runs the shared direct-get checks on each server, with the backend opened twice under
// one fresh prefix: with direct gets (the default) and with DisableDirectGet. Then a download that the
// SDK would send through a proxy goes through the SDK.
func TestDirectGet(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		cfg := config(s)
		cfg.Prefix = "s3-direct-test/" + hex.EncodeToString(raw[:])
		direct := open(t, cfg)
		cfg.DisableDirectGet = true
		s3test.RunDirectGet(t, direct, open(t, cfg))

		data := make([]byte, 100)
		_, _ = rand.Read(data)
		const key = "proxied"
		if _, err := direct.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = direct.Delete(t.Context(), key) })
		proxied := s3.WithProxyForTest(direct, func(*http.Request) (*url.URL, error) {
			return url.Parse("http://127.0.0.1:9") // never contacted: the SDK's own requests go direct
		})
		rc, info, err := proxied.Get(t.Context(), key, backends.Range{Offset: 7, Length: 9})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, ok := rc.(*connbody.Body); ok {
			t.Errorf("a proxied download went direct")
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data[7:16]) || info.Size != int64(len(data)) {
			t.Errorf("proxied: %d bytes, %+v, %v", len(got), info, err)
		}
	})
}

// TestChecksumPut runs the shared checks of uploads with a known sha256, with checksum puts on (the
// default) and off.
func TestChecksumPut(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		cfg := config(s)
		cfg.Prefix = "s3-checksum-test/" + hex.EncodeToString(raw[:]) + "/"
		checksummed := open(t, cfg)
		cfg.DisableChecksumPut = true
		s3test.RunChecksumPut(t, s, cfg.Prefix, checksummed, open(t, cfg))
	})
}
