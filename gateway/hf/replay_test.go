package hf_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/hf"
	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// recording is a file of testdata/: what the real huggingface_hub client exchanged with a real
// `mlgate serve`, written by cmd/mlgate/testdata/hf/hf_client.py --record, with the fixture it ran on.
type recording struct {
	Client    string
	Auth      bool
	Project   string
	Files     map[string]map[string]map[string]fileSpec // model → version → path → spec
	Aliases   map[string]map[string]string              // model → alias → MLflow version number (Seq)
	Exchanges []exchange
}

type fileSpec struct {
	Text      *string `json:"text"`
	Generated int     `json:"generated"`
	SHA256    string  `json:"sha256"`
}

// bytes rebuilds a fixture file as the driver made it.
func (s fileSpec) bytes(path string) []byte {
	if s.Text != nil {
		return []byte(*s.Text)
	}
	return generated(path, s.Generated)
}

// generated is the driver's generated(): sha256("<path>\n<i>") blocks, truncated to size. Both
// recordings hold the same files, so each is built once.
func generated(path string, size int) []byte {
	key := path + "\x00" + strconv.Itoa(size)
	if b, ok := generatedCache.Load(key); ok {
		return b.([]byte)
	}
	out := make([]byte, (size+sha256.Size-1)/sha256.Size*sha256.Size)
	in := []byte(path + "\n")
	prefix := len(in)
	for i := 0; i*sha256.Size < size; i++ {
		in = strconv.AppendInt(in[:prefix], int64(i), 10)
		sum := sha256.Sum256(in)
		copy(out[i*sha256.Size:], sum[:])
	}
	generatedCache.Store(key, out[:size])
	return out[:size]
}

var generatedCache sync.Map

type exchange struct {
	Scenario        string
	Method          string
	Path            string            // after HF_ENDPOINT
	RequestHeaders  map[string]string `json:"request_headers"`
	Status          int
	ResponseHeaders map[string]string `json:"response_headers"`
	Body            any               // JSON answers of /api/ routes and error bodies
}

// reliedHeaders are the response headers the client reads (file_download.get_hf_file_metadata,
// http_get, utils/_http.hf_raise_for_status and its pagination, the Xet detection): each must be
// answered exactly as recorded, absence included. Content-Length is checked on file routes, where
// the client compares it with X-Linked-Size and the bytes it got.
var reliedHeaders = []string{"X-Repo-Commit", "X-Linked-Etag", "ETag", "X-Linked-Size", "Location", "X-Error-Code",
	"Content-Range", "Content-Encoding", "X-Xet-Hash", "X-Xet-Refresh-Route", "Link"}

// volatile are body fields that hold the times of the recording's run.
var volatile = []string{"lastModified", "createdAt", "date"}

// TestReplayRecordedClient sends every request the real client sent to an in-process gateway holding
// the same fixture, and checks each answer as the client reads it: status, reliedHeaders, JSON
// bodies field by field (times aside), and the bytes of every file by sha256. Repeated requests (the
// three snapshot downloads fetch the same URLs) are sent once. Then it checks that the comparison
// catches a changed revision sha, a changed lfs.sha256 and a missing header, and that nothing was
// stored by serving.
func TestReplayRecordedClient(t *testing.T) {
	names, err := filepath.Glob("testdata/client-*.json")
	if err != nil || len(names) < 2 {
		t.Fatalf("recordings: %v %v", names, err)
	}
	for _, name := range names {
		t.Run(filepath.Base(name), func(t *testing.T) {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			var rec recording
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			replay(t, &rec)
		})
	}
}

func replay(t *testing.T, rec *recording) {
	env := gatewaytest.New(t, gateway.Config{Auth: rec.Auth})
	tokens := map[string]string{"<token:bad>": "mlg_not_a_token"}
	var writer map[string]string
	if rec.Auth {
		for _, k := range []struct {
			name, project string
			scope         metadata.TokenScope
		}{{"read", rec.Project, metadata.ScopeRead}, {"foreign", "other", metadata.ScopeAdmin}, {"write", rec.Project, metadata.ScopeWrite}} {
			secret, _, err := auth.IssueToken(t.Context(), env.Store, auth.TokenRequest{ProjectPath: k.project, Scope: k.scope, Name: k.name})
			if err != nil {
				t.Fatal(err)
			}
			tokens["<token:"+k.name+">"] = secret
		}
		writer = map[string]string{"Authorization": "Bearer " + tokens["<token:write>"]}
	}
	populate(t, env, rec, writer)
	blobs := len(env.BlobKeys())

	base := env.Srv.URL + "/hf/" + rec.Project
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	seen := map[string]bool{}
	sent := 0
	for i, ex := range rec.Exchanges {
		key := fmt.Sprint(ex.Method, ex.Path, ex.RequestHeaders)
		if seen[key] {
			continue
		}
		seen[key] = true
		sent++
		got := send(t, client, base, tokens, ex)
		for _, problem := range compare(rec, ex, got) {
			t.Errorf("exchange %d (%s) %s %s: %s", i, ex.Scenario, ex.Method, ex.Path, problem)
		}
	}
	if sent < 20 {
		t.Fatalf("only %d distinct requests replayed", sent)
	}
	t.Logf("%s: %d exchanges, %d distinct requests replayed", rec.Client, len(rec.Exchanges), sent)

	// The comparison can fail: a recording changed where the client relies on it is caught.
	mutations := 0
	for _, ex := range rec.Exchanges {
		if ex.Status != http.StatusOK || (ex.ResponseHeaders["x-repo-commit"] == "" && ex.Body == nil) {
			continue
		}
		got := send(t, client, base, tokens, ex)
		bad := ex
		bad.ResponseHeaders = maps.Clone(ex.ResponseHeaders)
		if c := bad.ResponseHeaders["x-repo-commit"]; c != "" {
			bad.ResponseHeaders["x-repo-commit"] = strings.Repeat("0", len(c))
			if len(compare(rec, bad, got)) == 0 {
				t.Errorf("%s %s: a different X-Repo-Commit went unnoticed", ex.Method, ex.Path)
			}
			mutations++
		}
		if m, ok := ex.Body.(map[string]any); ok && m["siblings"] != nil {
			body := deepCopy(t, ex.Body).(map[string]any)
			body["siblings"].([]any)[0].(map[string]any)["lfs"].(map[string]any)["sha256"] = strings.Repeat("0", 64)
			bad = ex
			bad.Body = body
			if len(compare(rec, bad, got)) == 0 {
				t.Errorf("%s %s: a different lfs.sha256 went unnoticed", ex.Method, ex.Path)
			}
			mutations++
		}
		if v := ex.ResponseHeaders["x-linked-size"]; v != "" {
			bad = ex
			bad.ResponseHeaders = maps.Clone(ex.ResponseHeaders)
			delete(bad.ResponseHeaders, "x-linked-size")
			if len(compare(rec, bad, got)) == 0 {
				t.Errorf("%s %s: a missing X-Linked-Size went unnoticed", ex.Method, ex.Path)
			}
			mutations++
		}
		if mutations >= 3 {
			break
		}
	}
	if mutations < 3 {
		t.Errorf("only %d mutations tried", mutations)
	}
	if n := len(env.BlobKeys()); n != blobs {
		t.Errorf("serving stored blobs: %d, %d before", n, blobs)
	}
}

// populate uploads the recording's fixture through the package API, versions in semver order (so
// that MLflow version numbers match the driver's), and sets its aliases.
func populate(t *testing.T, env *gatewaytest.Env, rec *recording, header map[string]string) {
	t.Helper()
	for model, versions := range rec.Files {
		vs := make([]string, 0, len(versions))
		for v := range versions {
			vs = append(vs, v)
		}
		slices.SortFunc(vs, pkgtypes.CompareSemver)
		for _, v := range vs {
			for path, spec := range versions[v] {
				b := spec.bytes(path)
				if gatewaytest.SHA256(b) != spec.SHA256 {
					t.Fatalf("%s %s %s: rebuilt bytes do not have the recorded sha256", model, v, path)
				}
				u := env.Srv.URL + "/api/v4/projects/" + url.PathEscape(rec.Project) + "/packages/ml_models/" +
					url.PathEscape(model) + "/" + url.PathEscape(v) + "/files/" + path
				gatewaytest.WantStatus(t, env.Do(http.MethodPut, u, bytes.NewReader(b), header), http.StatusCreated)
			}
		}
	}
	p, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: rec.Project})
	if err != nil {
		t.Fatal(err)
	}
	for model, aliases := range rec.Aliases {
		m, err := env.Store.Model(t.Context(), metadata.ModelRef{Project: p.ID, Name: model})
		if err != nil {
			t.Fatal(err)
		}
		for alias, seq := range aliases {
			n, err := strconv.ParseInt(seq, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Store.SetAlias(t.Context(), m.ID, alias, n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// answer is a replayed response: headers, and the JSON body or the length and sha256 of the bytes.
type answer struct {
	status int
	header http.Header
	body   any
	length int64
	sha256 string
}

func send(t *testing.T, client *http.Client, base string, tokens map[string]string, ex exchange) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), ex.Method, base+ex.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ex.RequestHeaders {
		if k == "authorization" {
			scheme, placeholder, _ := strings.Cut(v, " ")
			secret, ok := tokens[placeholder]
			if !ok {
				t.Fatalf("no token for %s", placeholder)
			}
			v = scheme + " " + secret
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && (strings.HasPrefix(ex.Path, "/api/") || resp.StatusCode >= 400) {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ex.Method == http.MethodGet {
			if err := json.Unmarshal(b, &a.body); err != nil {
				t.Fatalf("%s %s: body is not JSON: %v", ex.Method, ex.Path, err)
			}
		}
		return a
	}
	h := sha256.New()
	a.length, err = io.Copy(h, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a.sha256 = hex.EncodeToString(h.Sum(nil))
	return a
}

// compare lists how got differs from the recorded exchange where the client relies on it.
func compare(rec *recording, ex exchange, got answer) []string {
	var out []string
	if got.status != ex.Status {
		out = append(out, fmt.Sprintf("status %d, recorded %d", got.status, ex.Status))
	}
	recorded := http.Header{}
	for k, v := range ex.ResponseHeaders {
		recorded.Set(k, v)
	}
	file := strings.Contains(ex.Path, "/resolve/")
	headers := reliedHeaders
	if file {
		headers = append(slices.Clip(headers), "Content-Length")
	}
	for _, k := range headers {
		if g, r := got.header.Get(k), recorded.Get(k); g != r {
			out = append(out, fmt.Sprintf("%s %q, recorded %q", k, g, r))
		}
	}
	// The client tells a bad token from a missing repository by this exact message.
	if r := recorded.Get("X-Error-Message"); r == "Invalid credentials in Authorization header" && got.header.Get("X-Error-Message") != r {
		out = append(out, fmt.Sprintf("X-Error-Message %q, recorded %q", got.header.Get("X-Error-Message"), r))
	}
	if ex.Status >= 400 && got.header.Get("X-Error-Message") == "" {
		out = append(out, "no X-Error-Message")
	}
	switch {
	case ex.Status >= 400 && ex.Method == http.MethodGet:
		if m, ok := got.body.(map[string]any); !ok || m["error"] == nil || m["error"] == "" {
			out = append(out, fmt.Sprintf("error body %v lacks error", got.body))
		}
	case ex.Body != nil:
		if want, have := stripVolatile(ex.Body), stripVolatile(got.body); !reflect.DeepEqual(want, have) {
			w, _ := json.Marshal(want)
			h, _ := json.Marshal(have)
			out = append(out, fmt.Sprintf("body\n got %s\nwant %s", h, w))
		}
	case file && ex.Method == http.MethodGet && ex.Status == http.StatusOK:
		spec, ok := fileOf(rec, ex.Path, recorded.Get("X-Repo-Commit"))
		switch {
		case !ok:
			out = append(out, "no fixture version has this X-Repo-Commit and file")
		case got.sha256 != spec.SHA256:
			out = append(out, fmt.Sprintf("%d bytes with sha256 %s, want the file's %s", got.length, got.sha256, spec.SHA256))
		}
	}
	return out
}

// fileOf finds the fixture file a resolve path names in the version whose revision sha is commit:
// the model is what precedes /resolve/ (the endpoint ends in the project path), and each fixture
// version's sha is hf.RevisionSHA of its files, so this also checks that the recorded X-Repo-Commit
// is derived from the file list alone.
func fileOf(rec *recording, p, commit string) (fileSpec, bool) {
	model, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/resolve/")
	_, fp, _ := strings.Cut(rest, "/")
	fp, _ = url.PathUnescape(fp)
	for _, files := range rec.Files[model] {
		var fs []modelversion.File
		for path, spec := range files {
			size := int64(spec.Generated)
			if spec.Text != nil {
				size = int64(len(*spec.Text))
			}
			fs = append(fs, modelversion.File{File: &metadata.File{Path: path, Size: size, SHA256: spec.SHA256}, Path: path})
		}
		if hf.NewSnapshot(&metadata.Version{}, fs).SHA == commit {
			s, ok := files[fp]
			return s, ok
		}
	}
	return fileSpec{}, false
}

func stripVolatile(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if !slices.Contains(volatile, k) {
				out[k] = stripVolatile(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripVolatile(e)
		}
		return out
	}
	return v
}

func deepCopy(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
