package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// server is a real gateway (gatewaytest) behind a front that records every request and can change
// what the client sees.
type server struct {
	env *gatewaytest.Env
	srv *httptest.Server

	mu   sync.Mutex
	seen []string // "METHOD path Range"
	// front, when set, may answer a request itself (returning true) instead of the gateway.
	front func(w http.ResponseWriter, r *http.Request) bool
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{env: gatewaytest.New(t, gateway.Config{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, strings.TrimSpace(r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("Range")))
		front := s.front
		s.mu.Unlock()
		if front != nil && front(w, r) {
			return
		}
		s.env.Gateway.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// requests returns the requests seen so far whose "METHOD path" starts with prefix, and forgets all.
func (s *server) take(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.seen {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	s.seen = nil
	return out
}

func (s *server) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(Config{URL: s.srv.URL, Project: "team/vision"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeTree writes files (path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTree reads every file under dir (path → content).
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var v100 = Package{Model: "fraud/xgb", Version: "1.0.0"}

func TestPushSendsChecksumsAndSkipsWhatIsThere(t *testing.T) {
	s := newServer(t)
	src := t.TempDir()
	files := map[string][]byte{
		"model/weights.bin": randomBytes(3<<20, 1),
		"model/MLmodel":     []byte("flavors: {}\n"),
		"with space.txt":    []byte("x"),
		"empty":             {},
	}
	writeTree(t, src, files)
	// A pull's leftover is never pushed.
	writeTree(t, src, map[string][]byte{"model/.weights.bin.mlgate-partial": []byte("half")})
	var checksums sync.Map
	s.front = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut {
			checksums.Store(r.URL.EscapedPath(), r.Header.Get("X-Checksum-SHA256"))
		}
		return false
	}
	c := s.client(t)
	rep, err := c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 4 || rep.FilesTransferred != 4 || rep.FilesSkipped != 0 || rep.BytesTransferred != 3<<20+13 {
		t.Fatalf("first push: %+v", rep)
	}
	if puts := s.take("PUT"); len(puts) != 4 {
		t.Fatalf("first push made %d PUTs: %v", len(puts), puts)
	}
	got := 0
	checksums.Range(func(k, v any) bool {
		got++
		name, _ := strings.CutPrefix(k.(string), "/api/v4/projects/team%2Fvision/packages/ml_models/fraud%2Fxgb/1.0.0/files/")
		name = strings.ReplaceAll(name, "%20", " ")
		if v != sum(files[name]) {
			t.Errorf("%s sent X-Checksum-SHA256 %q, want %s", k, v, sum(files[name]))
		}
		return true
	})
	if got != 4 {
		t.Fatalf("%d uploads carried a checksum", got)
	}

	// Again: nothing is sent. Then one file changes: only it is sent.
	rep, err = c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{src}})
	if err != nil || rep.FilesTransferred != 0 || rep.BytesTransferred != 0 || rep.FilesSkipped != 4 {
		t.Fatalf("second push: %+v, %v", rep, err)
	}
	if puts := s.take("PUT"); len(puts) != 0 {
		t.Fatalf("second push sent %v", puts)
	}
	writeTree(t, src, map[string][]byte{"model/MLmodel": []byte("flavors: {python_function: {}}\n")})
	rep, err = c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{src}, Parallel: 1})
	if err != nil || rep.FilesTransferred != 1 || rep.FilesSkipped != 3 {
		t.Fatalf("push after a change: %+v, %v", rep, err)
	}
	if puts := s.take("PUT"); len(puts) != 1 || !strings.HasSuffix(puts[0], "/model/MLmodel") {
		t.Fatalf("push after a change sent %v", puts)
	}
}

func TestPushOfFilesUsesBaseNamesAndRefusesBadSources(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string][]byte{"a/x.bin": []byte("1"), "b/x.bin": []byte("2"), "bad:name": []byte("3"), "y.txt": []byte("4")})
	c := s.client(t)
	ctx := context.Background()
	rep, err := c.Push(ctx, PushOptions{Package: v100, Sources: []string{filepath.Join(dir, "a/x.bin"), filepath.Join(dir, "y.txt")}})
	if err != nil || rep.FilesTransferred != 2 {
		t.Fatalf("push of files: %+v, %v", rep, err)
	}
	if r := s.env.Do(http.MethodGet, s.env.PkgURL("fraud%2Fxgb/1.0.0/files/x.bin"), nil, nil); r.Status != 200 || string(r.Body) != "1" {
		t.Fatalf("x.bin: %d %q", r.Status, r.Body)
	}
	s.take("")
	for name, sources := range map[string][]string{
		"two sources for one path": {filepath.Join(dir, "a/x.bin"), filepath.Join(dir, "b/x.bin")},
		"a name the API refuses":   {filepath.Join(dir, "bad:name")},
		"a missing source":         {filepath.Join(dir, "nope")},
		"an empty directory":       {t.TempDir()},
	} {
		if rep, err := c.Push(ctx, PushOptions{Package: v100, Sources: sources}); err == nil || rep != nil {
			t.Errorf("%s: %+v, %v", name, rep, err)
		}
	}
	if seen := s.take(""); len(seen) != 0 {
		t.Fatalf("refused pushes still sent %v", seen)
	}
}

func TestPullReceivesVerifiesAndSkipsWhatIsThere(t *testing.T) {
	s := newServer(t)
	files := map[string][]byte{"model/weights.bin": randomBytes(2<<20, 2), "model/MLmodel": []byte("m"), "empty": {}}
	src := t.TempDir()
	writeTree(t, src, files)
	c := s.client(t)
	ctx := context.Background()
	if _, err := c.Push(ctx, PushOptions{Package: v100, Sources: []string{src}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []Ref{{Package: v100}, {Package: Package{CandidateIID: 1}}} {
		dst := t.TempDir()
		rep, err := c.Pull(ctx, PullOptions{Ref: ref, Dir: dst})
		if err != nil || rep.FilesTransferred != 3 || rep.BytesTransferred != 2<<20+1 {
			t.Fatalf("pull %s: %+v, %v", ref.Package, rep, err)
		}
		if got := readTree(t, dst); fmt.Sprint(got) != fmt.Sprint(files) {
			t.Fatalf("pull %s: got %d files, want %d", ref.Package, len(got), len(files))
		}
		s.take("")
		rep, err = c.Pull(ctx, PullOptions{Ref: ref, Dir: dst})
		if err != nil || rep.FilesTransferred != 0 || rep.FilesSkipped != 3 || rep.BytesTransferred != 0 {
			t.Fatalf("second pull %s: %+v, %v", ref.Package, rep, err)
		}
		if gets := s.take("GET"); len(gets) != 1 || !strings.HasSuffix(gets[0], "/files") {
			t.Fatalf("second pull %s requested %v, want the listing alone", ref.Package, gets)
		}
	}
}

func TestPullResolvesAliases(t *testing.T) {
	s := newServer(t)
	c := s.client(t)
	ctx := context.Background()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		src := t.TempDir()
		writeTree(t, src, map[string][]byte{"v.txt": []byte(v)})
		if _, err := c.Push(ctx, PushOptions{Package: Package{Model: "resnet", Version: v}, Sources: []string{src}}); err != nil {
			t.Fatal(err)
		}
	}
	r := s.env.Do(http.MethodPost, s.srv.URL+"/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow/registered-models/alias",
		strings.NewReader(`{"name":"resnet","alias":"champion","version":"1"}`), map[string]string{"Content-Type": "application/json"})
	if r.Status != 200 {
		t.Fatalf("setting the alias: %d %s", r.Status, r.Body)
	}
	ref, err := ParseRef("resnet@champion", true)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	rep, err := c.Pull(ctx, PullOptions{Ref: ref, Dir: dst})
	if err != nil || rep.Package != "resnet@1.0.0" {
		t.Fatalf("pull by alias: %+v, %v", rep, err)
	}
	if got := readTree(t, dst); string(got["v.txt"]) != "1.0.0" {
		t.Fatalf("pulled %q", got["v.txt"])
	}
	ref.Alias = "nope"
	if _, err := c.Pull(ctx, PullOptions{Ref: ref, Dir: t.TempDir()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown alias: %v", err)
	}
	if _, err := c.Pull(ctx, PullOptions{Ref: Ref{Package: Package{Model: "resnet", Version: "9.0.0"}}, Dir: t.TempDir()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
}

// pushOne pushes one file of content as path of v100 and returns the client.
func pushOne(t *testing.T, s *server, path string, content []byte) *Client {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{path: content})
	c := s.client(t)
	if _, err := c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{src}}); err != nil {
		t.Fatal(err)
	}
	s.take("")
	return c
}

func TestPullResumesAPartialFileWithRange(t *testing.T) {
	s := newServer(t)
	content := randomBytes(1<<20, 3)
	c := pushOne(t, s, "w.bin", content)
	dst := t.TempDir()
	const have = 300_000
	writeTree(t, dst, map[string][]byte{".w.bin.mlgate-partial": content[:have]})
	rep, err := c.Pull(context.Background(), PullOptions{Ref: Ref{Package: v100}, Dir: dst})
	if err != nil || rep.FilesResumed != 1 || rep.BytesTransferred != int64(len(content)-have) {
		t.Fatalf("resumed pull: %+v, %v", rep, err)
	}
	if gets := s.take("GET"); len(gets) != 2 || !strings.HasSuffix(gets[1], fmt.Sprintf("w.bin bytes=%d-", have)) {
		t.Fatalf("requests: %v", gets)
	}
	if got := readTree(t, dst); len(got) != 1 || !bytes.Equal(got["w.bin"], content) {
		t.Fatalf("after the resumed pull the directory holds %d files", len(got))
	}
}

func TestPullRestartsWhenThePartialFileIsWrong(t *testing.T) {
	s := newServer(t)
	content := randomBytes(1<<20, 4)
	c := pushOne(t, s, "w.bin", content)
	for name, partial := range map[string][]byte{
		"damaged":  bytes.Repeat([]byte{0}, 500_000),
		"too long": randomBytes(2<<20, 5),
		"complete": append([]byte{1}, content[1:]...),
	} {
		dst := t.TempDir()
		writeTree(t, dst, map[string][]byte{".w.bin.mlgate-partial": partial})
		rep, err := c.Pull(context.Background(), PullOptions{Ref: Ref{Package: v100}, Dir: dst})
		if err != nil || rep.FilesTransferred != 1 {
			t.Fatalf("%s partial: %+v, %v", name, rep, err)
		}
		if got := readTree(t, dst); len(got) != 1 || !bytes.Equal(got["w.bin"], content) {
			t.Fatalf("%s partial: the directory holds %d files", name, len(got))
		}
	}
}

func TestPullRestartsWhenTheServerIgnoresRange(t *testing.T) {
	s := newServer(t)
	content := randomBytes(1<<20, 6)
	c := pushOne(t, s, "w.bin", content)
	s.front = func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	}
	dst := t.TempDir()
	writeTree(t, dst, map[string][]byte{".w.bin.mlgate-partial": content[:1000]})
	rep, err := c.Pull(context.Background(), PullOptions{Ref: Ref{Package: v100}, Dir: dst})
	if err != nil || rep.BytesTransferred != int64(len(content)) {
		t.Fatalf("pull: %+v, %v", rep, err)
	}
	if got := readTree(t, dst); len(got) != 1 || !bytes.Equal(got["w.bin"], content) {
		t.Fatalf("the directory holds %d files", len(got))
	}
}

func TestPullContinuesACutDownloadAndRetriesUnavailable(t *testing.T) {
	s := newServer(t)
	content := randomBytes(1<<20, 7)
	c := pushOne(t, s, "w.bin", content)
	var mu sync.Mutex
	attempt := 0
	const cut = 400_000
	s.front = func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/w.bin") {
			return false
		}
		mu.Lock()
		attempt++
		n := attempt
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		case 2: // the connection breaks after cut bytes
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(content[:cut])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			return false
		}
		return true
	}
	dst := t.TempDir()
	rep, err := c.Pull(context.Background(), PullOptions{Ref: Ref{Package: v100}, Dir: dst})
	if err != nil || rep.BytesTransferred != int64(len(content)) {
		t.Fatalf("pull: %+v, %v", rep, err)
	}
	gets := s.take("GET")
	if len(gets) != 4 || !strings.HasSuffix(gets[3], fmt.Sprintf("bytes=%d-", cut)) {
		t.Fatalf("requests: %v", gets)
	}
	if got := readTree(t, dst); len(got) != 1 || !bytes.Equal(got["w.bin"], content) {
		t.Fatalf("the directory holds %d files", len(got))
	}
}

// TestPullRefusesWhatTheServerGetsWrong runs against a fake server that lists a path leaving the
// destination and serves bytes that do not match their listed sha256.
func TestPullRefusesWhatTheServerGetsWrong(t *testing.T) {
	good, bad := []byte("good"), []byte("bad")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/files"):
			_ = json.NewEncoder(w).Encode([]RemoteFile{
				{Path: "../escape", Size: 4, SHA256: sum(good)},
				{Path: "ok.txt", Size: 4, SHA256: sum(good)},
				{Path: "wrong.txt", Size: 3, SHA256: sum(good)},
			})
		case strings.HasSuffix(r.URL.Path, "/ok.txt"):
			_, _ = w.Write(good)
		default:
			_, _ = w.Write(bad)
		}
	}))
	defer srv.Close()
	c, err := NewClient(Config{URL: srv.URL, Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dst := filepath.Join(parent, "dst")
	rep, err := c.Pull(context.Background(), PullOptions{Ref: Ref{Package: v100}, Dir: dst})
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "../escape") || !strings.Contains(err.Error(), "wrong.txt") {
		t.Fatalf("pull: %v", err)
	}
	if len(rep.Failed) != 2 || rep.FilesTransferred != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if got := readTree(t, parent); len(got) != 1 || string(got["dst/ok.txt"]) != "good" {
		t.Fatalf("the destination holds %v", got)
	}
}

func TestTokenIsSentAsBearer(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	c, err := NewClient(Config{URL: srv.URL + "/", Project: "p", Token: "mlg_secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListFiles(context.Background(), v100); err != nil {
		t.Fatal(err)
	}
	if got != "Bearer mlg_secret" {
		t.Fatalf("Authorization: %q", got)
	}
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in      string
		aliases bool
		want    Ref
		ok      bool
	}{
		{"fraud/xgb@1.0.0", false, Ref{Package: Package{Model: "fraud/xgb", Version: "1.0.0"}}, true},
		{"m@1.2.3-rc.1", true, Ref{Package: Package{Model: "m", Version: "1.2.3-rc.1"}}, true},
		{"m@champion", true, Ref{Package: Package{Model: "m"}, Alias: "champion"}, true},
		{"m@champion", false, Ref{}, false},
		{"candidate:7", true, Ref{Package: Package{CandidateIID: 7}}, true},
		{"candidate:07", true, Ref{}, false},
		{"candidate:0", true, Ref{}, false},
		{"candidate:7", false, Ref{}, false},
		{"m", true, Ref{}, false},
		{"m@", true, Ref{}, false},
		{"@1.0.0", true, Ref{}, false},
	} {
		got, err := ParseRef(tc.in, tc.aliases)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("ParseRef(%q, %v) = %+v, %v", tc.in, tc.aliases, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidRef) {
			t.Errorf("ParseRef(%q): %v does not wrap ErrInvalidRef", tc.in, err)
		}
	}
}

func TestInterruptedPullStopsAndSaysSo(t *testing.T) {
	s := newServer(t)
	src := t.TempDir()
	writeTree(t, src, map[string][]byte{"a": []byte("a"), "b": []byte("b"), "c": []byte("c")})
	c := s.client(t)
	if _, err := c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{src}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.front = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/files/a") {
			cancel() // as a Ctrl-C during the first download
		}
		return false
	}
	s.take("")
	rep, err := c.Pull(ctx, PullOptions{Ref: Ref{Package: v100}, Dir: t.TempDir(), Parallel: 1})
	if !errors.Is(err, context.Canceled) || rep == nil || rep.FilesTransferred == 3 {
		t.Fatalf("interrupted pull: %+v, %v", rep, err)
	}
	if gets := s.take("GET"); len(gets) != 2 {
		t.Fatalf("the interrupted pull went on: %v", gets)
	}
}

// TestPushUploadsAgainAfterALostRaceForANewVersion: a replica that lost the race to create a new version
// answers 409 "upload again"; push sends the file once more. A conflict that stays is reported after the
// second try, not retried forever.
func TestPushUploadsAgainAfterALostRaceForANewVersion(t *testing.T) {
	for _, conflicts := range []int{1, 5} {
		var mu sync.Mutex
		puts := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				w.WriteHeader(http.StatusNotFound) // the version does not exist yet
				_, _ = w.Write([]byte(`{"error":"not_found","message":"version not found"}`))
				return
			}
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			puts++
			n := puts
			mu.Unlock()
			if n <= conflicts {
				w.WriteHeader(http.StatusConflict)
				_, _ = w.Write([]byte(`{"error":"conflict","message":"version 1.0.0 of \"fraud/xgb\" was created by another request during this upload; upload again"}`))
				return
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(RemoteFile{Path: "m.bin", Size: int64(len(b)), SHA256: sum(b)})
		}))
		c, err := NewClient(Config{URL: srv.URL, Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		writeTree(t, dir, map[string][]byte{"m.bin": []byte("model")})
		rep, err := c.Push(context.Background(), PushOptions{Package: v100, Sources: []string{dir}})
		srv.Close()
		switch conflicts {
		case 1:
			if err != nil || rep.FilesTransferred != 1 || puts != 2 {
				t.Fatalf("one lost race: %+v, %v, %d PUTs; want the file sent twice and stored", rep, err, puts)
			}
		default:
			if !errors.Is(err, ErrIncomplete) || len(rep.Failed) != 1 || puts != 2 {
				t.Fatalf("a lasting conflict: %+v, %v, %d PUTs; want it reported after two tries", rep, err, puts)
			}
		}
	}
}
