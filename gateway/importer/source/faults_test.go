package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mlflowServer builds a client on an httptest server running h, with delays recorded instead of slept.
func mlflowServer(t *testing.T, h http.Handler) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := newClient(Config{URL: srv.URL, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	delays := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*delays = append(*delays, d)
		mu.Unlock()
		return ctx.Err()
	}
	return c, delays
}

func TestRetry5xxThenSuccess(t *testing.T) {
	var calls atomic.Int32
	c, delays := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error_code":"TEMPORARILY_UNAVAILABLE","message":"db restarting"}`)
			return
		}
		io.WriteString(w, `{"experiments":[{"experiment_id":"0","name":"Default","creation_time":"1700000000000"}]}`)
	}))
	var got []Experiment
	if err := c.Experiments(t.Context(), func(e Experiment) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || len(*delays) != 2 || len(got) != 1 || got[0].CreationTime != 1700000000000 {
		t.Fatalf("calls %d delays %v got %+v", calls.Load(), *delays, got)
	}
}

func TestRetry429HonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	c, delays := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, `{}`)
	}))
	if err := c.Experiments(t.Context(), func(Experiment) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(*delays) != 1 || (*delays)[0] != 7*time.Second {
		t.Fatalf("delays %v, want [7s]", *delays)
	}
}

func TestNoRetryOn4xxAndUnavailableAfterAttempts(t *testing.T) {
	var calls atomic.Int32
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.HasSuffix(r.URL.Path, "runs/get") {
			w.WriteHeader(404)
			io.WriteString(w, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Run with id=abc not found"}`)
			return
		}
		w.WriteHeader(502)
	}))
	_, err := c.Run(t.Context(), "abc")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Run with id=abc not found") || calls.Load() != 1 {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	err = c.RegisteredModels(t.Context(), func(RegisteredModel) error { return nil })
	if !errors.Is(err, ErrUnavailable) || calls.Load() != 4 || !strings.Contains(err.Error(), "registered-models/search") {
		t.Fatalf("err %v after %d calls", err, calls.Load())
	}
}

func TestConnectionErrorsRetried(t *testing.T) {
	var calls atomic.Int32
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler) // the connection is cut without an answer
		}
		io.WriteString(w, `{"run":{"info":{"run_uuid":"r1","experiment_id":"3","start_time":"5"},"data":{}}}`)
	}))
	r, err := c.Run(t.Context(), "r1")
	if err != nil || r.ID != "r1" || r.StartTime != 5 {
		t.Fatalf("run %+v err %v", r, err)
	}
}

// artifactServer serves one file through the mlflow-artifacts proxy; cut decides, per request, after how
// many bytes to break the connection (-1: never).
func artifactServer(t *testing.T, data []byte, cut func(n int, r *http.Request) int, ignoreRange bool) (*Client, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var ranges []string
	n := 0
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/2.0/mlflow-artifacts/artifacts/1/run/artifacts/big.bin" {
			w.WriteHeader(404)
			io.WriteString(w, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"gone"}`)
			return
		}
		mu.Lock()
		n++
		ranges = append(ranges, r.Header.Get("Range"))
		limit := cut(n, r)
		mu.Unlock()
		start := 0
		if rg := r.Header.Get("Range"); rg != "" && !ignoreRange {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		}
		body := data[start:]
		if limit >= 0 && limit < len(body) {
			w.Write(body[:limit])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Write(body)
	}))
	return c, &ranges
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestArtifactResumesWithRange(t *testing.T) {
	data := randomBytes(3<<20 + 17)
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreRange=%v", ignore), func(t *testing.T) {
			c, ranges := artifactServer(t, data, func(n int, _ *http.Request) int {
				if n <= 2 {
					return 1 << 20 // two breaks, each after 1 MiB of that response
				}
				return -1
			}, ignore)
			rc, size, err := c.OpenArtifact(t.Context(), "mlflow-artifacts:/1/run/artifacts", "big.bin")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, rc); err != nil {
				t.Fatal(err)
			}
			rc.Close()
			if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) || size != int64(len(data)) {
				t.Fatalf("sha256 or size (%d) differ", size)
			}
			want := []string{"", "bytes=1048576-", "bytes=2097152-"}
			if ignore {
				want = []string{"", "bytes=1048576-", "bytes=1048576-"} // the second break happened while skipping
			}
			if fmt.Sprint(*ranges) != fmt.Sprint(want) {
				t.Fatalf("ranges %q, want %q", *ranges, want)
			}
		})
	}
}

func TestArtifactGivesUpWithoutProgress(t *testing.T) {
	data := randomBytes(1000)
	c, _ := artifactServer(t, data, func(n int, r *http.Request) int {
		if n == 1 {
			return 100
		}
		return 0 // every resume breaks at once
	}, false)
	rc, _, err := c.OpenArtifact(t.Context(), "mlflow-artifacts:/1/run/artifacts", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "big.bin") {
		t.Fatalf("err %v", err)
	}
}

func TestVanishedArtifact(t *testing.T) {
	data := randomBytes(1000)
	c, _ := artifactServer(t, data, func(int, *http.Request) int { return -1 }, false)
	_, _, err := c.OpenArtifact(t.Context(), "mlflow-artifacts:/1/run/artifacts", "other.bin")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "other.bin") {
		t.Fatalf("err %v", err)
	}
	// A file that vanishes between a break and the resume is ErrNotFound from Read.
	var gone atomic.Bool
	c2, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Swap(true) {
			w.WriteHeader(404)
			io.WriteString(w, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"no such file"}`)
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	rc, _, err := c2.OpenArtifact(t.Context(), "mlflow-artifacts:/1/run/artifacts", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

// historyServer serves n points of one key; pageSize 0 answers everything at once like the reference
// server, otherwise it pages with tokens and honours max_results up to pageSize.
func historyServer(t *testing.T, n, pageSize int) (*Client, *atomic.Int32) {
	var calls atomic.Int32
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		q := r.URL.Query()
		start, _ := strconv.Atoi(q.Get("page_token"))
		end := n
		if pageSize > 0 {
			mr, _ := strconv.Atoi(q.Get("max_results"))
			end = min(start+min(mr, pageSize), n)
		}
		var sb strings.Builder
		sb.WriteString(`{"metrics":[`)
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteByte(',')
			}
			v := strconv.Itoa(i)
			if i%1000 == 999 {
				v = `"NaN"`
			}
			fmt.Fprintf(&sb, `{"key":"loss","value":%s,"timestamp":%d,"step":"%d"}`, v, 1000+i, i)
		}
		sb.WriteString("]")
		if end < n {
			fmt.Fprintf(&sb, `,"next_page_token":"%d"`, end)
		}
		sb.WriteString("}")
		io.WriteString(w, sb.String())
	}))
	return c, &calls
}

func TestLongHistoryPaginated(t *testing.T) {
	for _, tc := range []struct{ pageSize, calls int }{{0, 1}, {25000, 3}, {10000, 7}} {
		c, calls := historyServer(t, 60001, tc.pageSize)
		var pts []Metric
		pages := 0
		err := c.MetricHistory(t.Context(), "r1", "loss", func(ms []Metric) error { pages++; pts = append(pts, ms...); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 60001 || int(calls.Load()) != tc.calls || pages != tc.calls {
			t.Fatalf("page size %d: %d points in %d calls", tc.pageSize, len(pts), calls.Load())
		}
		for i, p := range pts {
			if p.Step != int64(i) || p.Timestamp != int64(1000+i) || (i%1000 == 999) != (p.Value != p.Value) {
				t.Fatalf("point %d: %+v", i, p)
			}
		}
	}
}

func TestPagingLoopDetected(t *testing.T) {
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"experiments":[{"experiment_id":"1"}],"next_page_token":"same"}`)
	}))
	err := c.Experiments(t.Context(), func(Experiment) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("err %v", err)
	}
}

func TestUnsupportedScheme(t *testing.T) {
	c, _ := mlflowServer(t, http.NotFoundHandler())
	for _, uri := range []string{"gs://bucket/x", "dbfs:/databricks/mlflow", "http://elsewhere/files/x"} {
		err := c.Artifacts(t.Context(), uri, func(FileInfo) error { return nil })
		if !errors.Is(err, ErrUnsupportedScheme) {
			t.Fatalf("%s: %v", uri, err)
		}
	}
	if err := c.Artifacts(t.Context(), "gs://bucket/x", nil); !strings.Contains(err.Error(), `"gs"`) {
		t.Fatalf("the scheme is not named: %v", err)
	}
}

func TestFileArtifacts(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "top.txt"), []byte("top"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a", "b", "deep.bin"), randomBytes(5000), 0o644))
	c, _ := mlflowServer(t, http.NotFoundHandler())
	for _, uri := range []string{"file://" + filepath.ToSlash(dir), dir} {
		if got := walkAll(t, c, uri); got != "a/b/deep.bin:5000 top.txt:3" {
			t.Fatalf("%s: %q", uri, got)
		}
		if got := readAll(t, c, uri, "top.txt"); got != "top" {
			t.Fatalf("%q", got)
		}
	}
	if _, _, err := c.OpenArtifact(t.Context(), dir, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	if _, _, err := c.OpenArtifact(t.Context(), dir, "../etc/passwd"); err == nil {
		t.Fatal("escaping path accepted")
	}
	// A run that logged nothing has no directory at all.
	if got := walkAll(t, c, filepath.Join(dir, "missing")); got != "" {
		t.Fatalf("%q", got)
	}
}

func TestProxyListingShapes(t *testing.T) {
	// Basenames one level at a time, {} for an empty directory, whole paths from other servers,
	// and a hostile ".." name refused.
	listings := map[string]string{
		"1/r/artifacts":           `{"files":[{"path":"dir","is_dir":true},{"path":"a.txt","is_dir":false,"file_size":"3"}]}`,
		"1/r/artifacts/dir":       `{"files":[{"path":"dir/sub","is_dir":true},{"path":"empty","is_dir":true}]}`,
		"1/r/artifacts/dir/sub":   `{"files":[{"path":"x.bin","file_size":5}]}`,
		"1/r/artifacts/dir/empty": `{}`,
		"1/bad/artifacts":         `{"files":[{"path":"../../etc/passwd","file_size":5}]}`,
	}
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, listings[r.URL.Query().Get("path")])
	}))
	if got := walkAll(t, c, "mlflow-artifacts:/1/r/artifacts"); got != "dir/sub/x.bin:5 a.txt:3" {
		t.Fatalf("%q", got)
	}
	if err := c.Artifacts(t.Context(), "mlflow-artifacts:/1/bad/artifacts", func(FileInfo) error { return nil }); err == nil {
		t.Fatal("a .. name was accepted")
	}
}

func TestAuthHeaders(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization") + "|" + r.Header.Get("PRIVATE-TOKEN"))
		io.WriteString(w, "{}")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: srv.URL, Token: "t1"}, "Bearer t1|"},
		{Config{URL: srv.URL, Token: "t1", Username: "u", Password: "p"}, "Basic dTpw|"},
		{Config{URL: srv.URL + "/api/v4/projects/1/ml/mlflow", Token: "t2"}, "|t2"},
	} {
		if _, err := Open(t.Context(), tc.cfg); err != nil {
			t.Fatal(err)
		}
		if got.Load() != tc.want {
			t.Fatalf("%+v: headers %q, want %q", tc.cfg, got.Load(), tc.want)
		}
	}
	c, err := Open(t.Context(), Config{URL: "http://user:pw@" + strings.TrimPrefix(srv.URL, "http://") + "/"})
	if err != nil || strings.Contains(c.Identity(), "pw") || strings.HasSuffix(c.Identity(), "/") {
		t.Fatalf("identity %q err %v", c.Identity(), err)
	}
}

func TestLoggedModelsOn2x(t *testing.T) {
	c, _ := mlflowServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		json.NewEncoder(w).Encode(map[string]string{"error_code": "ENDPOINT_NOT_FOUND", "message": "no"})
	}))
	if err := c.LoggedModels(t.Context(), []string{"1"}, func(LoggedModel) error { t.Fatal("model"); return nil }); err != nil {
		t.Fatal(err)
	}
	if v, err := c.MajorVersion(t.Context()); v != 2 || err != nil {
		t.Fatalf("%d %v", v, err)
	}
}
