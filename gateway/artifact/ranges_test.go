package artifact_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// TestRangeEdgeCases walks the corners of RFC 9110's byte ranges on a 10000-byte file: what is
// unsatisfiable is 416 with "Content-Range: bytes */10000" (never a 206 with an inverted range), what
// runs past the end is clamped, an unknown unit is ignored, and a pile of ranges is refused.
func TestRangeEdgeCases(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	const size = 10000
	data := gatewaytest.Payload(size)
	url := env.PkgURL("m/1.0.0/files/r.bin")
	gatewaytest.WantStatus(t, env.Put(url, data), http.StatusCreated)
	emptyURL := env.PkgURL("m/1.0.0/files/empty.bin")
	gatewaytest.WantStatus(t, env.Put(emptyURL, nil), http.StatusCreated)

	manyRanges := make([]string, 100)
	for i := range manyRanges {
		manyRanges[i] = "0-0"
	}
	cases := []struct {
		name, url, rng string
		status         int
		contentRange   string // for 206 and 416
		body           []byte // for 200 and a single-range 206
	}{
		{"suffix of zero", url, "bytes=-0", 416, "bytes */10000", nil},
		{"first after last", url, "bytes=5-4", 416, "bytes */10000", nil},
		{"no numbers", url, "bytes=-", 416, "bytes */10000", nil},
		{"not a number", url, "bytes=a-b", 416, "bytes */10000", nil},
		{"empty set", url, "bytes=", 416, "bytes */10000", nil},
		{"negative", url, "bytes=--5", 416, "bytes */10000", nil},
		{"first at the size", url, "bytes=10000-", 416, "bytes */10000", nil},
		{"first past the size", url, "bytes=20000-30000", 416, "bytes */10000", nil},
		{"first overflows", url, "bytes=99999999999999999999-", 416, "bytes */10000", nil},
		{"last overflows", url, "bytes=9990-99999999999999999999", 206, "bytes 9990-9999/10000", data[9990:]},
		{"suffix overflows", url, "bytes=-99999999999999999999", 206, "bytes 0-9999/10000", data},
		{"suffix", url, "bytes=-10", 206, "bytes 9990-9999/10000", data[9990:]},
		{"last past the end", url, "bytes=9995-20000", 206, "bytes 9995-9999/10000", data[9995:]},
		{"one byte", url, "bytes=0-0", 206, "bytes 0-0/10000", data[:1]},
		{"spaces", url, "bytes= 1-2 ", 206, "bytes 1-2/10000", data[1:3]},
		{"unsatisfiable dropped", url, "bytes=-0,20000-,5-6", 206, "bytes 5-6/10000", data[5:7]},
		{"several", url, "bytes=0-1,5-6", 206, "", nil},
		{"too many", url, "bytes=" + strings.Join(manyRanges, ","), 416, "bytes */10000", nil},
		{"other unit", url, "items=0-5", 200, "", data},
		{"empty file, first byte", emptyURL, "bytes=0-", 416, "bytes */0", nil},
		{"empty file, suffix", emptyURL, "bytes=-5", 200, "", []byte{}},
		{"empty file, suffix of zero", emptyURL, "bytes=-0", 416, "bytes */0", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := env.Do(method, c.url, nil, map[string]string{"Range": c.rng})
				if r.Status != c.status {
					t.Fatalf("%s Range %q: status %d, want %d (%d bytes)", method, c.rng, r.Status, c.status, len(r.Body))
				}
				if got := r.Header.Get("Content-Range"); c.contentRange != "" && got != c.contentRange {
					t.Fatalf("%s Range %q: Content-Range %q, want %q", method, c.rng, got, c.contentRange)
				}
				if method == http.MethodGet && c.body != nil && !bytes.Equal(r.Body, c.body) {
					t.Fatalf("Range %q: %d bytes, want %d", c.rng, len(r.Body), len(c.body))
				}
				if method == http.MethodGet && c.status == http.StatusRequestedRangeNotSatisfiable {
					if code := r.ErrorCode(t); code != "invalid_range" {
						t.Fatalf("Range %q: error %q", c.rng, code)
					}
				}
			}
		})
	}

	// The MLflow proxy serves the same files with MLflow's error body.
	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "experiments/create", `{"name": "ranges"}`), http.StatusOK)
	r := env.MLflowPost(env.Srv.URL, "runs/create", `{"experiment_id": "1"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &created)
	art := env.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/1/" + created.Run.Info.RunID + "/artifacts/r.bin"
	gatewaytest.WantStatus(t, env.Do(http.MethodPut, art, bytes.NewReader(data), nil), http.StatusOK)
	r = env.Do(http.MethodGet, art, nil, map[string]string{"Range": "bytes=-0"})
	gatewaytest.WantStatus(t, r, http.StatusRequestedRangeNotSatisfiable)
	if code := r.MLflowError(t); code != "INVALID_PARAMETER_VALUE" || r.Header.Get("Content-Range") != "bytes */10000" {
		t.Fatalf("proxy: %s %q", code, r.Header.Get("Content-Range"))
	}

	// Preconditions come before ranges: a matching If-None-Match is 304 whatever the Range says, and an
	// If-Range that does not match serves the whole file.
	etag := `"` + gatewaytest.SHA256(data) + `"`
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-0", "If-None-Match": etag})
	gatewaytest.WantStatus(t, r, http.StatusNotModified)
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-0", "If-Range": `"other"`})
	gatewaytest.WantStatus(t, r, http.StatusOK)
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-0", "If-Range": etag})
	gatewaytest.WantStatus(t, r, http.StatusRequestedRangeNotSatisfiable)
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-5", "If-Range": etag})
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, data[size-5:]) {
		t.Fatalf("If-Range matching: %d, %d bytes", r.Status, len(r.Body))
	}
}
