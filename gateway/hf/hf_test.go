package hf_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/hf"
	"github.com/mlgate/mlgate/metadata"
)

// fixture is a gateway with project team/vision holding model fraud-xgb (1.0.0 with a nested folder,
// 1.1.0, 2.0.0-rc.1; alias champion → 1.0.0), model org/name, and model twin whose one version has
// 1.0.0's files.
type fixture struct {
	env   *gatewaytest.Env
	base  string            // HF_ENDPOINT
	admin map[string]string // the admin token's header, when auth is on
}

var v1Files = map[string][]byte{
	"config.json":          []byte(`{"model_type":"xgb"}`),
	"README.md":            []byte("# fraud\n"),
	"model.safetensors":    gatewaytest.Payload(300_000),
	"sub/dir/weights.bin":  gatewaytest.Payload(70_001)[1:],
	"sub/requirements.txt": []byte("xgboost==2.0\n"),
}

func newFixture(t *testing.T, authOn bool) *fixture {
	t.Helper()
	env := gatewaytest.New(t, gateway.Config{Auth: authOn})
	f := &fixture{env: env, base: env.Srv.URL + "/hf/team/vision"}
	if authOn {
		f.admin = bearer(f.token(t, "team/vision", metadata.ScopeAdmin))
	}
	for p, b := range v1Files {
		f.put(t, "fraud-xgb", "1.0.0", p, b)
		f.put(t, "twin", "3.0.0", p, b)
	}
	f.put(t, "fraud-xgb", "1.1.0", "model.safetensors", []byte("one point one"))
	f.put(t, "fraud-xgb", "2.0.0-rc.1", "model.safetensors", []byte("two rc"))
	f.put(t, "org/name", "0.1.0", "m.bin", []byte("org"))
	p, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: "team/vision"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.Store.Model(t.Context(), metadata.ModelRef{Project: p.ID, Name: "fraud-xgb"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.SetAlias(t.Context(), m.ID, "champion", 1); err != nil {
		t.Fatal(err)
	}
	return f
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

func (f *fixture) token(t *testing.T, project string, scope metadata.TokenScope) string {
	t.Helper()
	secret, _, err := auth.IssueToken(t.Context(), f.env.Store, auth.TokenRequest{ProjectPath: project, Scope: scope, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func (f *fixture) put(t *testing.T, model, version, path string, b []byte) {
	t.Helper()
	r := f.env.Do(http.MethodPut, f.env.PkgURL(url.PathEscape(model)+"/"+version+"/files/"+path), bytes.NewReader(b), f.admin)
	gatewaytest.WantStatus(t, r, http.StatusCreated)
}

func (f *fixture) get(t *testing.T, method, rest string, h map[string]string) gatewaytest.Response {
	t.Helper()
	if h == nil {
		h = f.admin
	}
	return f.env.Do(method, f.base+rest, nil, h)
}

type sibling struct {
	RFilename string `json:"rfilename"`
	Size      int64  `json:"size"`
	BlobID    string `json:"blobId"`
	LFS       struct {
		Size        int64  `json:"size"`
		SHA256      string `json:"sha256"`
		PointerSize int    `json:"pointerSize"`
	} `json:"lfs"`
}

type info struct {
	ID       string                   `json:"id"`
	SHA      string                   `json:"sha"`
	Siblings []sibling                `json:"siblings"`
	MLgate   struct{ Version string } `json:"mlgate"`
}

func (f *fixture) info(t *testing.T, repo, rev string) info {
	t.Helper()
	p := "/api/models/" + repo
	if rev != "" {
		p += "/revision/" + url.PathEscape(rev)
	}
	r := f.get(t, http.MethodGet, p, nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var i info
	r.JSON(t, &i)
	if r.Header.Get("X-Repo-Commit") != i.SHA {
		t.Errorf("X-Repo-Commit %q, body sha %q", r.Header.Get("X-Repo-Commit"), i.SHA)
	}
	return i
}

// Revisions: a semver, an alias, main (the highest version that is not a prerelease), the sha that
// any of them answered, and no revision at all all name the right version; the sha is 40 hex digits,
// the same for the same files (model twin) and different for different ones.
func TestRevisions(t *testing.T) {
	f := newFixture(t, false)
	v1 := f.info(t, "fraud-xgb", "1.0.0")
	if len(v1.SHA) != 40 || strings.Trim(v1.SHA, "0123456789abcdef") != "" {
		t.Fatalf("sha %q is not 40 lowercase hex digits", v1.SHA)
	}
	if v1.ID != "fraud-xgb" || v1.MLgate.Version != "1.0.0" || len(v1.Siblings) != len(v1Files) {
		t.Fatalf("info of 1.0.0: %+v", v1)
	}
	for _, s := range v1.Siblings {
		b := v1Files[s.RFilename]
		if s.Size != int64(len(b)) || s.LFS.Size != s.Size || s.LFS.SHA256 != gatewaytest.SHA256(b) || s.LFS.PointerSize < 100 || len(s.BlobID) != 40 {
			t.Errorf("sibling %+v", s)
		}
	}
	for _, rev := range []string{"champion", v1.SHA} {
		if got := f.info(t, "fraud-xgb", rev); got.SHA != v1.SHA || got.MLgate.Version != "1.0.0" {
			t.Errorf("revision %q: sha %s version %s, want 1.0.0's %s", rev, got.SHA, got.MLgate.Version, v1.SHA)
		}
	}
	main := f.info(t, "fraud-xgb", "main")
	if main.MLgate.Version != "1.1.0" || main.SHA == v1.SHA {
		t.Errorf("main is %s (%s), want 1.1.0", main.MLgate.Version, main.SHA)
	}
	if bare := f.info(t, "fraud-xgb", ""); bare.SHA != main.SHA {
		t.Errorf("no revision: %s, want main's %s", bare.SHA, main.SHA)
	}
	if rc := f.info(t, "fraud-xgb", "2.0.0-rc.1"); rc.SHA == main.SHA || rc.MLgate.Version != "2.0.0-rc.1" {
		t.Errorf("2.0.0-rc.1: %+v", rc)
	}
	if got := f.info(t, "fraud-xgb", main.SHA); got.MLgate.Version != "1.1.0" {
		t.Errorf("main's sha names %s", got.MLgate.Version)
	}
	if twin := f.info(t, "twin", "3.0.0"); twin.SHA != v1.SHA {
		t.Errorf("the same files in another model: sha %s, want %s", twin.SHA, v1.SHA)
	}
	// The org form: a repo id with a slash is the model name; the project path may also end in it.
	if got := f.info(t, "org/name", "0.1.0"); got.ID != "org/name" || len(got.Siblings) != 1 {
		t.Errorf("org/name: %+v", got)
	}
	r := f.env.Get(f.env.Srv.URL + "/hf/team/api/models/vision/fraud-xgb/revision/1.0.0")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var shorter info
	r.JSON(t, &shorter)
	if shorter.SHA != v1.SHA {
		t.Errorf("HF_ENDPOINT …/hf/team with repo vision/fraud-xgb: sha %s, want %s", shorter.SHA, v1.SHA)
	}
}

// The client's exceptions hang on X-Error-Code: each miss gets its code, a 404, and never a 500.
func TestMissesAndBadInput(t *testing.T) {
	f := newFixture(t, false)
	sha := f.info(t, "fraud-xgb", "1.0.0").SHA
	for _, c := range []struct {
		method, rest string
		status       int
		code         string
		commit       bool // X-Repo-Commit is sent (an entry miss)
	}{
		{"GET", "/api/models/nope", 404, "RepoNotFound", false},
		{"GET", "/api/models/nope/revision/main", 404, "RepoNotFound", false},
		{"HEAD", "/nope/resolve/main/config.json", 404, "RepoNotFound", false},
		{"GET", "/api/models/fraud-xgb/revision/9.9.9", 404, "RevisionNotFound", false},
		{"GET", "/api/models/fraud-xgb/revision/no-such-alias", 404, "RevisionNotFound", false},
		{"GET", "/api/models/fraud-xgb/revision/" + strings.Repeat("ab", 20), 404, "RevisionNotFound", false},
		{"GET", "/api/models/fraud-xgb/revision/a%2Fb", 404, "RevisionNotFound", false},
		{"HEAD", "/fraud-xgb/resolve/1.2.3/config.json", 404, "RevisionNotFound", false},
		{"HEAD", "/fraud-xgb/resolve/1.0.0/nope.json", 404, "EntryNotFound", true},
		{"GET", "/fraud-xgb/resolve/" + sha + "/sub", 404, "EntryNotFound", true},
		{"GET", "/fraud-xgb/resolve/1.0.0/sub/../config.json", 404, "EntryNotFound", true},
		{"GET", "/api/models/fraud-xgb/tree/1.0.0/nope", 404, "EntryNotFound", true},
		{"GET", "/api/models/fraud-xgb/tree/1.0.0/config.json", 404, "EntryNotFound", true},
		{"GET", "/api/models/fraud-xgb/tree/1.0.0?recursive=maybe", 400, "", true},
		{"GET", "/api/models/fraud-xgb/tree/1.0.0?cursor=%25%25", 400, "", true},
		{"GET", "/api/datasets/x", 404, "", false},
		{"GET", "/", 404, "", false},
		{"POST", "/api/models/fraud-xgb/commit/main", 405, "", false},
		{"PUT", "/fraud-xgb/resolve/main/config.json", 405, "", false},
	} {
		r := f.get(t, c.method, c.rest, nil)
		what := c.method + " " + c.rest
		if r.Status != c.status || r.Header.Get("X-Error-Code") != c.code {
			t.Errorf("%s: %d %q, want %d %q: %s", what, r.Status, r.Header.Get("X-Error-Code"), c.status, c.code, r.Body)
			continue
		}
		if r.Header.Get("X-Error-Message") == "" {
			t.Errorf("%s: no X-Error-Message", what)
		}
		if got := r.Header.Get("X-Repo-Commit"); (got != "") != c.commit {
			t.Errorf("%s: X-Repo-Commit %q, want it sent: %v", what, got, c.commit)
		}
		if c.method == http.MethodGet {
			var body struct{ Error string }
			r.JSON(t, &body)
			if body.Error == "" {
				t.Errorf("%s: body %s lacks error", what, r.Body)
			}
		}
	}
}

// Files: HEAD gives what hf_hub_download reads (X-Repo-Commit, X-Linked-Etag, X-Linked-Size,
// Content-Length, ETag) and no Xet header; GET gives the bytes, Range a 206; a revision by sha, and
// a path with escapes, work too; and serving stores no blob.
func TestResolve(t *testing.T) {
	f := newFixture(t, false)
	f.put(t, "fraud-xgb", "1.0.1", "docs/a%20b%2Bc.txt", []byte("odd name"))
	blobs := len(f.env.BlobKeys())
	sha := f.info(t, "fraud-xgb", "1.0.0").SHA
	want := v1Files["sub/dir/weights.bin"]
	for _, rev := range []string{"1.0.0", "champion", sha} {
		h := f.get(t, http.MethodHead, "/fraud-xgb/resolve/"+rev+"/sub/dir/weights.bin", nil)
		gatewaytest.WantStatus(t, h, http.StatusOK)
		for k, v := range map[string]string{
			"X-Repo-Commit": sha, "X-Linked-Etag": `"` + gatewaytest.SHA256(want) + `"`, "ETag": `"` + gatewaytest.SHA256(want) + `"`,
			"X-Linked-Size": "70000", "Content-Length": "70000", "Accept-Ranges": "bytes",
		} {
			if got := h.Header.Get(k); got != v {
				t.Errorf("HEAD by %s: %s %q, want %q", rev, k, got, v)
			}
		}
		for _, k := range []string{"X-Xet-Hash", "X-Xet-Refresh-Route", "Link", "Location"} {
			if h.Header.Get(k) != "" {
				t.Errorf("HEAD by %s sent %s: %q", rev, k, h.Header.Get(k))
			}
		}
		g := f.get(t, http.MethodGet, "/fraud-xgb/resolve/"+rev+"/sub%2Fdir/weights.bin", nil)
		gatewaytest.WantStatus(t, g, http.StatusOK)
		if !bytes.Equal(g.Body, want) {
			t.Errorf("GET by %s: %d bytes, not the file", rev, len(g.Body))
		}
	}
	// A path as the client quotes it (quote(filename): spaces and "+" escaped, "/" kept).
	if r := f.get(t, http.MethodGet, "/fraud-xgb/resolve/1.0.1/docs/a%20b%2Bc.txt", nil); r.Status != http.StatusOK || string(r.Body) != "odd name" {
		t.Errorf("a quoted path: %d %q", r.Status, r.Body)
	}
	rg := f.get(t, http.MethodGet, "/fraud-xgb/resolve/main/model.safetensors", map[string]string{"Range": "bytes=4-"})
	gatewaytest.WantStatus(t, rg, http.StatusPartialContent)
	if string(rg.Body) != "point one" || rg.Header.Get("Content-Range") != "bytes 4-12/13" {
		t.Errorf("range: %q %q", rg.Body, rg.Header.Get("Content-Range"))
	}
	if n := len(f.env.BlobKeys()); n != blobs {
		t.Errorf("serving added blobs: %d, was %d", n, blobs)
	}
}

type entry struct {
	Type, OID, Path string
	Size            int64
	LFS             *struct {
		OID         string `json:"oid"`
		Size        int64
		PointerSize int `json:"pointerSize"`
	}
	LastCommit *struct{ ID, Title, Date string } `json:"lastCommit"`
}

func (f *fixture) tree(t *testing.T, rest string) ([]entry, gatewaytest.Response) {
	t.Helper()
	r := f.get(t, http.MethodGet, rest, nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var es []entry
	r.JSON(t, &es)
	return es, r
}

func paths(es []entry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Type[:1]+":"+e.Path)
	}
	return strings.Join(out, " ")
}

// Tree listings: the root or a folder, recursive or not, with lfs.oid the sha256; expand adds the
// version as lastCommit; long listings are paged by the Link header, which the client follows.
func TestTree(t *testing.T) {
	f := newFixture(t, false)
	sha := f.info(t, "fraud-xgb", "1.0.0").SHA
	for rest, want := range map[string]string{
		"/api/models/fraud-xgb/tree/1.0.0": "f:README.md f:config.json f:model.safetensors d:sub",
		"/api/models/fraud-xgb/tree/" + sha + "?recursive=True&expand=False": "f:README.md f:config.json f:model.safetensors " +
			"d:sub d:sub/dir f:sub/dir/weights.bin f:sub/requirements.txt",
		"/api/models/fraud-xgb/tree/champion/sub":                   "d:sub/dir f:sub/requirements.txt",
		"/api/models/fraud-xgb/tree/1.0.0/sub%2Fdir?recursive=true": "f:sub/dir/weights.bin",
		"/api/models/fraud-xgb/tree/1.0.0/sub/dir/":                 "f:sub/dir/weights.bin",
	} {
		es, r := f.tree(t, rest)
		if got := paths(es); got != want {
			t.Errorf("%s: %s, want %s", rest, got, want)
		}
		if r.Header.Get("X-Repo-Commit") != sha {
			t.Errorf("%s: X-Repo-Commit %q", rest, r.Header.Get("X-Repo-Commit"))
		}
		for _, e := range es {
			if len(e.OID) != 40 || e.LastCommit != nil {
				t.Errorf("%s: entry %+v", rest, e)
			}
			if e.Type == "file" && (e.LFS == nil || e.LFS.OID != gatewaytest.SHA256(v1Files[e.Path]) || e.Size != int64(len(v1Files[e.Path]))) {
				t.Errorf("%s: file entry %+v", rest, e)
			}
		}
	}
	es, _ := f.tree(t, "/api/models/fraud-xgb/tree/1.0.0?expand=true")
	for _, e := range es {
		if e.LastCommit == nil || e.LastCommit.ID != sha || !strings.HasSuffix(e.LastCommit.Date, "Z") {
			t.Errorf("expanded entry %+v", e)
		}
	}

	defer hf.SetTreePageSize(3)()
	var all []entry
	next := f.base + "/api/models/fraud-xgb/tree/1.0.0?recursive=true"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := f.env.Get(next)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var es []entry
		r.JSON(t, &es)
		all = append(all, es...)
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			u, ok := strings.CutSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
			if !ok || !strings.HasPrefix(u, f.env.Srv.URL+"/hf/team/vision/api/models/fraud-xgb/tree/1.0.0?") {
				t.Fatalf("Link %q", l)
			}
			next = u
		}
	}
	if got := paths(all); got != "f:README.md f:config.json f:model.safetensors d:sub d:sub/dir f:sub/dir/weights.bin f:sub/requirements.txt" {
		t.Errorf("paged listing: %s", got)
	}
}

// With auth, as the Hub answers: no token reads as a missing repository (401 RepoNotFound), a token
// it does not know as bad credentials, another project's token exactly as a missing repository (404
// RepoNotFound), and a read token of the project works.
func TestAuth(t *testing.T) {
	f := newFixture(t, true)
	read := bearer(f.token(t, "team/vision", metadata.ScopeRead))
	foreign := bearer(f.token(t, "other", metadata.ScopeAdmin))
	sha := f.info(t, "fraud-xgb", "1.0.0").SHA
	type answer struct {
		status        int
		code, message string
	}
	seen := func(r gatewaytest.Response) answer {
		return answer{r.Status, r.Header.Get("X-Error-Code"), r.Header.Get("X-Error-Message")}
	}
	for _, rest := range []string{"/api/models/fraud-xgb/revision/1.0.0", "/fraud-xgb/resolve/1.0.0/config.json",
		"/api/models/fraud-xgb/tree/" + sha, "/fraud-xgb/resolve/1.0.0/nope"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if r := f.get(t, m, rest, read); r.Status >= 400 && !strings.HasSuffix(rest, "nope") {
				t.Errorf("%s %s with a read token: %d %s", m, rest, r.Status, r.Body)
			}
			anon := f.get(t, m, rest, map[string]string{})
			if anon.Status != http.StatusUnauthorized || anon.Header.Get("X-Error-Code") != "RepoNotFound" {
				t.Errorf("%s %s without a token: %+v", m, rest, seen(anon))
			}
			bad := f.get(t, m, rest, bearer("mlg_nope"))
			if bad.Status != http.StatusUnauthorized || bad.Header.Get("X-Error-Message") != "Invalid credentials in Authorization header" {
				t.Errorf("%s %s with an unknown token: %+v", m, rest, seen(bad))
			}
			// Another project's token learns nothing: its answer is that of a model that does not exist.
			got := seen(f.get(t, m, rest, foreign))
			missing := seen(f.get(t, m, strings.Replace(rest, "fraud-xgb", "no-such-model", 1), foreign))
			if got.status != http.StatusNotFound || got.code != "RepoNotFound" ||
				got.status != missing.status || got.code != missing.code || strings.ReplaceAll(got.message, "fraud-xgb", "no-such-model") != missing.message {
				t.Errorf("%s %s with another project's token: %+v; a missing model: %+v", m, rest, got, missing)
			}
		}
	}
	if r := f.get(t, http.MethodPost, "/api/models/fraud-xgb/commit/main", read); r.Status != http.StatusForbidden {
		t.Errorf("POST with a read token: %d", r.Status)
	}
	if r := f.get(t, http.MethodPost, "/api/models/fraud-xgb/commit/main", foreign); r.Status != http.StatusNotFound || r.Header.Get("X-Error-Code") != "RepoNotFound" {
		t.Errorf("POST with another project's token: %d %q", r.Status, r.Header.Get("X-Error-Code"))
	}
}

// A version's sha follows its files: adding a file changes it, and the old sha names nothing.
func TestShaFollowsFiles(t *testing.T) {
	f := newFixture(t, false)
	before := f.info(t, "fraud-xgb", "1.0.0").SHA
	f.put(t, "fraud-xgb", "1.0.0", "extra.txt", []byte("more"))
	after := f.info(t, "fraud-xgb", "1.0.0")
	if after.SHA == before || !slices.ContainsFunc(after.Siblings, func(s sibling) bool {
		return s.RFilename == "extra.txt"
	}) {
		t.Fatalf("sha %s → %s", before, after.SHA)
	}
	r := f.get(t, http.MethodGet, "/api/models/fraud-xgb/revision/"+before, nil)
	if r.Status != http.StatusNotFound || r.Header.Get("X-Error-Code") != "RevisionNotFound" {
		t.Errorf("the old sha: %d %q", r.Status, r.Header.Get("X-Error-Code"))
	}
	var e map[string]any
	if err := json.Unmarshal(r.Body, &e); err != nil || e["error"] == nil {
		t.Errorf("body %s", r.Body)
	}
}
