package oci_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/oci"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
)

// fixture is a gateway with project team/vision holding model fraud-xgb (versions 1.0.0, 1.1.0,
// 1.2.0+build.5, 2.0.0-rc.1; alias champion → 1.0.0), model Vision+Net (reachable as vision-net) and
// model rc-only (only prereleases).
type fixture struct {
	env   *gatewaytest.Env
	host  string
	files map[string][]byte // "<model>/<version>/<path>" → bytes
	admin string            // a team/vision admin token, when auth is on
}

var v1Files = map[string][]byte{
	"MLmodel":              []byte("flavors:\n  sklearn: {}\n"),
	"README.md":            []byte("# fraud\n"),
	"model.pkl":            gatewaytest.Payload(300_000),
	"sub/dir/weights.bin":  gatewaytest.Payload(70_001)[1:],
	"sub/requirements.txt": []byte("xgboost==2.0\n"),
}

func newFixture(t *testing.T, authOn bool) *fixture {
	t.Helper()
	env := gatewaytest.New(t, gateway.Config{Auth: authOn})
	f := &fixture{env: env, host: strings.TrimPrefix(env.Srv.URL, "http://"), files: map[string][]byte{}}
	if authOn {
		secret, _, err := auth.IssueToken(t.Context(), env.Store, auth.TokenRequest{ProjectPath: "team/vision", Scope: metadata.ScopeAdmin, Name: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		f.admin = secret
	}
	for p, b := range v1Files {
		f.put(t, "fraud-xgb", "1.0.0", p, b)
	}
	f.put(t, "fraud-xgb", "1.1.0", "model.pkl", []byte("one point one"))
	f.put(t, "fraud-xgb", "1.2.0+build.5", "model.pkl", []byte("one point two"))
	f.put(t, "fraud-xgb", "2.0.0-rc.1", "model.pkl", []byte("two rc"))
	f.put(t, "Vision+Net", "0.1.0", "net.onnx", []byte("onnx bytes"))
	f.put(t, "rc-only", "1.0.0-alpha", "m.bin", []byte("alpha"))
	f.put(t, "rc-only", "1.0.0-beta", "m.bin", []byte("beta"))
	m, err := env.Store.Model(t.Context(), metadata.ModelRef{Project: f.project(t), Name: "fraud-xgb"})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Store.SetAlias(t.Context(), m.ID, "champion", 1); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) project(t *testing.T) int64 {
	p, err := f.env.Store.Project(t.Context(), metadata.ProjectRef{Path: "team/vision"})
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func (f *fixture) put(t *testing.T, model, version, path string, b []byte) {
	t.Helper()
	h := map[string]string{}
	if f.admin != "" {
		h["Authorization"] = "Bearer " + f.admin
	}
	r := f.env.Do(http.MethodPut, f.env.PkgURL(strings.ReplaceAll(model, "+", "%2B")+"/"+strings.ReplaceAll(version, "+", "%2B")+"/files/"+path), bytes.NewReader(b), h)
	gatewaytest.WantStatus(t, r, http.StatusCreated)
	f.files[model+"/"+version+"/"+path] = b
}

// repo is an oras-go client of one repository.
func (f *fixture) repo(t *testing.T, name string, cred *orasauth.Credential) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(f.host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	client := &orasauth.Client{Client: f.env.Srv.Client(), Cache: orasauth.NewCache()}
	if cred != nil {
		client.Credential = orasauth.StaticCredential(f.host, *cred)
	}
	r.Client = client
	return r
}

// pull fetches ref's manifest through oras-go, which verifies every digest and size, checks its
// ModelPack shape, fetches every layer and returns the files by path.
func pull(t *testing.T, r *remote.Repository, ref string) (ocispec.Descriptor, map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	desc, raw, err := oras_fetch(ctx, r, ref)
	if err != nil {
		t.Fatalf("manifest %s: %v", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != oci.ArtifactTypeModel || m.Config.MediaType != oci.MediaTypeConfig {
		t.Fatalf("not a ModelPack manifest: %s", raw)
	}
	cfg, err := content.FetchAll(ctx, r, m.Config)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var c struct {
		ModelFS struct{ DiffIDs []string } `json:"modelfs"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil || len(c.ModelFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("config %s: %v", cfg, err)
	}
	out := map[string][]byte{}
	for i, l := range m.Layers {
		if c.ModelFS.DiffIDs[i] != l.Digest.String() {
			t.Errorf("diffId %d is %s, layer %s", i, c.ModelFS.DiffIDs[i], l.Digest)
		}
		p := l.Annotations[oci.AnnotationTitle]
		if p == "" || l.Annotations[oci.AnnotationFilepath] != p {
			t.Fatalf("layer %d lacks its path: %v", i, l.Annotations)
		}
		b, err := content.FetchAll(ctx, r, l)
		if err != nil {
			t.Fatalf("layer %s: %v", p, err)
		}
		out[p] = b
	}
	return desc, out
}

func oras_fetch(ctx context.Context, r *remote.Repository, ref string) (ocispec.Descriptor, []byte, error) {
	desc, rc, err := r.FetchReference(ctx, ref)
	if err != nil {
		return desc, nil, err
	}
	defer rc.Close()
	b, err := content.ReadAll(rc, desc)
	return desc, b, err
}

func (f *fixture) want(t *testing.T, got map[string][]byte, model, version string) {
	t.Helper()
	n := 0
	for k, b := range f.files {
		p, ok := strings.CutPrefix(k, model+"/"+version+"/")
		if !ok {
			continue
		}
		n++
		if !bytes.Equal(got[p], b) {
			t.Errorf("%s:%s %s: got %d bytes (sha %s), want %d (sha %s)", model, version, p, len(got[p]),
				gatewaytest.SHA256(got[p]), len(b), gatewaytest.SHA256(b))
		}
	}
	if len(got) != n {
		t.Errorf("%s:%s: got %d files, want %d", model, version, len(got), n)
	}
}

func TestPullBySemverAliasLatestAndDigest(t *testing.T) {
	f := newFixture(t, false)
	before := gatewaytest.BlobCount(t, f.env.Blobs)
	r := f.repo(t, "team/vision/fraud-xgb", nil)
	d1, files := pull(t, r, "1.0.0")
	f.want(t, files, "fraud-xgb", "1.0.0")
	dAlias, files := pull(t, r, "champion")
	f.want(t, files, "fraud-xgb", "1.0.0")
	dDigest, files := pull(t, r, d1.Digest.String())
	f.want(t, files, "fraud-xgb", "1.0.0")
	if dAlias.Digest != d1.Digest || dDigest.Digest != d1.Digest {
		t.Errorf("one version, three digests: %s %s %s", d1.Digest, dAlias.Digest, dDigest.Digest)
	}
	// latest skips the higher prerelease 2.0.0-rc.1; build metadata is written with "_".
	dLatest, files := pull(t, r, "latest")
	f.want(t, files, "fraud-xgb", "1.2.0+build.5")
	dBuild, _ := pull(t, r, "1.2.0_build.5")
	if dLatest.Digest != dBuild.Digest {
		t.Errorf("latest %s, 1.2.0_build.5 %s", dLatest.Digest, dBuild.Digest)
	}
	_, files = pull(t, r, "2.0.0-rc.1")
	f.want(t, files, "fraud-xgb", "2.0.0-rc.1")
	// Only prereleases: latest is the highest of them.
	_, files = pull(t, f.repo(t, "team/vision/rc-only", nil), "latest")
	f.want(t, files, "rc-only", "1.0.0-beta")
	// A name OCI refuses (capital, "+") is reachable by its lowercased alias, and by itself.
	_, files = pull(t, f.repo(t, "team/vision/vision-net", nil), "0.1.0")
	f.want(t, files, "Vision+Net", "0.1.0")
	r2 := f.env.Get(f.env.Srv.URL + "/v2/team/vision/Vision+Net/manifests/0.1.0")
	gatewaytest.WantStatus(t, r2, http.StatusOK)

	if after := gatewaytest.BlobCount(t, f.env.Blobs); after != before {
		t.Errorf("serving over OCI stored blobs: %d before, %d after", before, after)
	}
}

func TestManifestIsDeterministicAndFollowsTheFiles(t *testing.T) {
	f := newFixture(t, false)
	url := f.env.Srv.URL + "/v2/team/vision/fraud-xgb/manifests/1.0.0"
	a, b := f.env.Get(url), f.env.Get(url)
	gatewaytest.WantStatus(t, a, http.StatusOK)
	if !bytes.Equal(a.Body, b.Body) || a.Header.Get("Docker-Content-Digest") != b.Header.Get("Docker-Content-Digest") {
		t.Fatal("two requests, two manifests")
	}
	if d := a.Header.Get("Docker-Content-Digest"); d != "sha256:"+gatewaytest.SHA256(a.Body) {
		t.Fatalf("Docker-Content-Digest %s is not the body's", d)
	}
	// Another gateway over the same store (a replica) serves the same bytes.
	other := gateway.New(gateway.Config{}, f.env.Store, f.env.Backend, nil)
	rec := httptestGet(t, other, "/v2/team/vision/fraud-xgb/manifests/1.0.0")
	if !bytes.Equal(rec, a.Body) {
		t.Fatal("a replica serves another manifest")
	}
	// Aliases and tags are not part of it; a replaced file is.
	m, _ := f.env.Store.Model(t.Context(), metadata.ModelRef{Project: f.project(t), Name: "fraud-xgb"})
	if err := f.env.Store.SetAlias(t.Context(), m.ID, "prod", 1); err != nil {
		t.Fatal(err)
	}
	if c := f.env.Get(url); !bytes.Equal(c.Body, a.Body) {
		t.Fatal("an alias changed the manifest")
	}
	f.put(t, "fraud-xgb", "1.0.0", "README.md", []byte("# fraud, revised\n"))
	c := f.env.Get(url)
	if c.Header.Get("Docker-Content-Digest") == a.Header.Get("Docker-Content-Digest") {
		t.Fatal("replacing a file kept the manifest digest")
	}
	// The old manifest's digest names nothing now.
	old := f.env.Get(f.env.Srv.URL + "/v2/team/vision/fraud-xgb/manifests/" + a.Header.Get("Docker-Content-Digest"))
	wantOCIError(t, old, http.StatusNotFound, "MANIFEST_UNKNOWN")
	// Deleting a file changes it too, and its blob is no longer one of the repository's.
	gatewaytest.WantStatus(t, f.env.Do(http.MethodDelete, f.env.PkgURL("fraud-xgb/1.0.0/files/README.md"), nil, nil), http.StatusNoContent)
	d := f.env.Get(url)
	if d.Header.Get("Docker-Content-Digest") == c.Header.Get("Docker-Content-Digest") {
		t.Fatal("deleting a file kept the manifest digest")
	}
	var after struct {
		Layers []struct{ Annotations map[string]string }
	}
	d.JSON(t, &after)
	if len(after.Layers) != len(v1Files)-1 {
		t.Fatalf("%d layers after a delete, want %d", len(after.Layers), len(v1Files)-1)
	}
	readme := "sha256:" + gatewaytest.SHA256([]byte("# fraud, revised\n"))
	wantOCIError(t, f.env.Get(f.env.Srv.URL+"/v2/team/vision/fraud-xgb/blobs/"+readme), http.StatusNotFound, "BLOB_UNKNOWN")
}

func httptestGet(t *testing.T, s *gateway.Server, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	rec := &recorder{header: http.Header{}}
	s.Handler().ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, rec.status, rec.body.String())
	}
	return rec.body.Bytes()
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) {
	if r.status == 0 {
		r.status = s
	}
}

func wantOCIError(t *testing.T, r gatewaytest.Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("not an OCI error body: %s", r.Body)
	}
	if body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("code %q (%q), want %s", body.Errors[0].Code, body.Errors[0].Message, code)
	}
}

func TestBlobsRangeHeadAndIsolation(t *testing.T) {
	f := newFixture(t, false)
	base := f.env.Srv.URL + "/v2/team/vision/fraud-xgb"
	data := v1Files["sub/dir/weights.bin"]
	d := "sha256:" + gatewaytest.SHA256(data)

	head := f.env.Do(http.MethodHead, base+"/blobs/"+d, nil, nil)
	gatewaytest.WantStatus(t, head, http.StatusOK)
	if head.Header.Get("Content-Length") != "70000" || head.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("HEAD: %v", head.Header)
	}
	rg := f.env.Do(http.MethodGet, base+"/blobs/"+d, nil, map[string]string{"Range": "bytes=100-199"})
	gatewaytest.WantStatus(t, rg, http.StatusPartialContent)
	if !bytes.Equal(rg.Body, data[100:200]) || rg.Header.Get("Content-Range") != "bytes 100-199/70000" {
		t.Fatalf("range: %d bytes, %s", len(rg.Body), rg.Header.Get("Content-Range"))
	}
	bad := f.env.Do(http.MethodGet, base+"/blobs/"+d, nil, map[string]string{"Range": "bytes=70000-"})
	if bad.Status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", bad.Status)
	}

	// A stored file whose bytes its backend lost: BLOB_UNKNOWN, and no blob key in the message.
	lost := gatewaytest.Payload(1234)
	f.put(t, "fraud-xgb", "1.1.0", "lost.bin", lost)
	row, err := f.env.Store.File(t.Context(), mustVersionOwner(t, f, "fraud-xgb", "1.1.0"), "lost.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.Blobs.Delete(t.Context(), row.BlobKey); err != nil {
		t.Fatal(err)
	}
	gone := f.env.Get(base + "/blobs/sha256:" + gatewaytest.SHA256(lost))
	wantOCIError(t, gone, http.StatusNotFound, "BLOB_UNKNOWN")
	if strings.Contains(string(gone.Body), row.BlobKey) {
		t.Fatalf("the message names the blob key: %s", gone.Body)
	}

	// A file of another model of the same project is not a blob of this repository.
	onnx := "sha256:" + gatewaytest.SHA256([]byte("onnx bytes"))
	wantOCIError(t, f.env.Get(base+"/blobs/"+onnx), http.StatusNotFound, "BLOB_UNKNOWN")
	gatewaytest.WantStatus(t, f.env.Get(f.env.Srv.URL+"/v2/team/vision/vision-net/blobs/"+onnx), http.StatusOK)
	wantOCIError(t, f.env.Get(base+"/blobs/sha256:"+strings.Repeat("0", 64)), http.StatusNotFound, "BLOB_UNKNOWN")
	wantOCIError(t, f.env.Get(base+"/blobs/sha512:"+strings.Repeat("0", 128)), http.StatusNotFound, "BLOB_UNKNOWN")
}

func TestErrorsAndBadInput(t *testing.T) {
	f := newFixture(t, false)
	u := f.env.Srv.URL + "/v2/"
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "team/vision/nope/manifests/1.0.0", 404, "NAME_UNKNOWN"},
		{"GET", "team/nope/fraud-xgb/manifests/1.0.0", 404, "NAME_UNKNOWN"},
		{"GET", "fraud-xgb/manifests/1.0.0", 400, "NAME_INVALID"},
		{"GET", "team/vision/fraud-xgb/manifests/9.9.9", 404, "MANIFEST_UNKNOWN"},
		{"GET", "team/vision/fraud-xgb/manifests/nobody", 404, "MANIFEST_UNKNOWN"},
		{"HEAD", "team/vision/fraud-xgb/manifests/9.9.9", 404, ""},
		{"GET", "team/vision/fraud-xgb/manifests/-bad-tag", 404, "MANIFEST_UNKNOWN"},
		{"GET", "team/vision/fraud-xgb/manifests/%2e%2e", 404, "MANIFEST_UNKNOWN"},
		{"GET", "team/vision/fraud-xgb/manifests/sha256:" + strings.Repeat("0", 64), 404, "MANIFEST_UNKNOWN"},
		{"GET", "team/vision/fraud-xgb/manifests/sha256:abc", 400, "DIGEST_INVALID"},
		{"GET", "team/vision/fraud-xgb/blobs/sha256:ABC" + strings.Repeat("0", 61), 400, "DIGEST_INVALID"},
		{"GET", "team/vision/fraud-xgb/blobs/sha256", 400, "DIGEST_INVALID"},
		{"GET", "team/vision/fraud-xgb/blobs/..%2F..%2Fetc:passwd", 400, "DIGEST_INVALID"},
		{"GET", "team/vision/fraud-xgb/referrers/nope", 400, "DIGEST_INVALID"},
		{"GET", "team/../vision/fraud-xgb/manifests/1.0.0", 400, "NAME_INVALID"},
		{"GET", "team/vision/..%2F..%2Fx/manifests/1.0.0", 400, "NAME_INVALID"},
		{"GET", "team//vision/fraud-xgb/tags/list", 400, "NAME_INVALID"},
		{"GET", "team/vision/fraud-xgb/tags/list?n=-1", 400, "NAME_INVALID"},
		{"GET", "team/vision/fraud-xgb/files/a", 404, "NAME_UNKNOWN"},
		{"GET", "_catalog", 404, "NAME_UNKNOWN"},
		{"POST", "team/vision/fraud-xgb/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PUT", "team/vision/fraud-xgb/manifests/3.0.0", 405, "UNSUPPORTED"},
		{"DELETE", "team/vision/fraud-xgb/manifests/1.0.0", 405, "UNSUPPORTED"},
		{"PATCH", "team/vision/fraud-xgb/blobs/uploads/x", 405, "UNSUPPORTED"},
	} {
		r := f.env.Do(c.method, u+c.path, nil, nil)
		if c.code == "" {
			if r.Status != c.status {
				t.Errorf("%s %s: %d, want %d", c.method, c.path, r.Status, c.status)
			}
			continue
		}
		t.Run(c.method+" "+c.path, func(t *testing.T) { wantOCIError(t, r, c.status, c.code) })
	}
	r := f.env.Get(u)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/: %v", r.Header)
	}
}

func TestTagsPagingAndReferrers(t *testing.T) {
	f := newFixture(t, false)
	r := f.repo(t, "team/vision/fraud-xgb", nil)
	var all []string
	if err := r.Tags(t.Context(), "", func(tags []string) error { all = append(all, tags...); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"1.0.0", "1.1.0", "1.2.0_build.5", "2.0.0-rc.1", "champion", "latest"}
	if !slices.Equal(all, want) {
		t.Fatalf("tags %v, want %v", all, want)
	}
	base := f.env.Srv.URL + "/v2/team/vision/fraud-xgb/tags/list"
	var page struct {
		Name string
		Tags []string
	}
	p1 := f.env.Get(base + "?n=2")
	p1.JSON(t, &page)
	if page.Name != "team/vision/fraud-xgb" || !slices.Equal(page.Tags, want[:2]) {
		t.Fatalf("page 1: %s", p1.Body)
	}
	link := p1.Header.Get("Link")
	if link != `</v2/team/vision/fraud-xgb/tags/list?n=2&last=1.1.0>; rel="next"` {
		t.Fatalf("Link %q", link)
	}
	p2 := f.env.Get(f.env.Srv.URL + strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`))
	p2.JSON(t, &page)
	if !slices.Equal(page.Tags, want[2:4]) {
		t.Fatalf("page 2: %s", p2.Body)
	}
	p3 := f.env.Get(base + "?n=10&last=champion")
	p3.JSON(t, &page)
	if !slices.Equal(page.Tags, want[5:]) || p3.Header.Get("Link") != "" {
		t.Fatalf("last page: %s %q", p3.Body, p3.Header.Get("Link"))
	}

	desc, _, err := oras_fetch(t.Context(), r, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var refs []ocispec.Descriptor
	if err := r.Referrers(t.Context(), desc, "", func(rs []ocispec.Descriptor) error { refs = append(refs, rs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Fatalf("referrers: %v", refs)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, true)
	read, _, err := auth.IssueToken(t.Context(), f.env.Store, auth.TokenRequest{ProjectPath: "team/vision", Scope: metadata.ScopeRead, Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := auth.IssueToken(t.Context(), f.env.Store, auth.TokenRequest{ProjectPath: "other", Scope: metadata.ScopeAdmin, Name: "o"})
	if err != nil {
		t.Fatal(err)
	}
	// The challenge names the token endpoint and the repository's pull scope.
	anon := f.env.Get(f.env.Srv.URL + "/v2/team/vision/fraud-xgb/manifests/1.0.0")
	wantOCIError(t, anon, http.StatusUnauthorized, "UNAUTHORIZED")
	wantChallenge := `Bearer realm="` + f.env.Srv.URL + `/v2/token",service="` + f.host + `",scope="repository:team/vision/fraud-xgb:pull"`
	if got := anon.Header.Get("WWW-Authenticate"); got != wantChallenge {
		t.Fatalf("challenge %q, want %q", got, wantChallenge)
	}
	base := f.env.Get(f.env.Srv.URL + "/v2/")
	wantOCIError(t, base, http.StatusUnauthorized, "UNAUTHORIZED")
	if !strings.HasPrefix(base.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("GET /v2/ challenge %q", base.Header.Get("WWW-Authenticate"))
	}

	// oras-go logs in as oras does: the challenge, then Basic to the token endpoint, then the bearer.
	r := f.repo(t, "team/vision/fraud-xgb", &orasauth.Credential{Username: "anyone", Password: read})
	_, files := pull(t, r, "champion")
	f.want(t, files, "fraud-xgb", "1.0.0")
	// The mlgate token sent directly as a Bearer works too.
	r = f.repo(t, "team/vision/fraud-xgb", &orasauth.Credential{AccessToken: read})
	_, files = pull(t, r, "1.0.0")
	f.want(t, files, "fraud-xgb", "1.0.0")

	// Another project's token: exactly what a missing repository gets.
	for _, name := range []string{"team/vision/fraud-xgb", "team/vision/no-such-model"} {
		r = f.repo(t, name, &orasauth.Credential{Username: "x", Password: foreign})
		_, _, err := oras_fetch(t.Context(), r, "1.0.0")
		if !errors.Is(err, errdef.ErrNotFound) {
			t.Fatalf("%s with another project's token: %v, want not found", name, err)
		}
	}
	hdr := map[string]string{"Authorization": "Bearer " + foreign}
	a := f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/team/vision/fraud-xgb/manifests/1.0.0", nil, hdr)
	b := f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/team/vision/nothing/manifests/1.0.0", nil, hdr)
	wantOCIError(t, a, http.StatusNotFound, "NAME_UNKNOWN")
	wantOCIError(t, b, http.StatusNotFound, "NAME_UNKNOWN")
	if strings.ReplaceAll(string(a.Body), "fraud-xgb", "nothing") != string(b.Body) {
		t.Fatalf("another project's repository and a missing one differ: %s vs %s", a.Body, b.Body)
	}
	push := f.env.Do(http.MethodPost, f.env.Srv.URL+"/v2/team/vision/fraud-xgb/blobs/uploads/", nil, hdr)
	wantOCIError(t, push, http.StatusNotFound, "NAME_UNKNOWN")
	push = f.env.Do(http.MethodPost, f.env.Srv.URL+"/v2/team/vision/fraud-xgb/blobs/uploads/", nil, map[string]string{"Authorization": "Bearer " + f.admin})
	wantOCIError(t, push, http.StatusMethodNotAllowed, "UNSUPPORTED")

	// The token endpoint: wrong credentials are 401 (docker login fails); none get an anonymous bearer
	// that grants nothing; a revoked token ends its bearers.
	bad := f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/token?service=x", nil, map[string]string{"Authorization": basic("u", "mlg_wrong")})
	wantOCIError(t, bad, http.StatusUnauthorized, "UNAUTHORIZED")
	tok := tokenFrom(t, f.env.Get(f.env.Srv.URL+"/v2/token"))
	wantOCIError(t, f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/", nil, map[string]string{"Authorization": "Bearer " + tok}), http.StatusUnauthorized, "UNAUTHORIZED")
	tok = tokenFrom(t, f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/token?scope=repository:team/vision/fraud-xgb:pull", nil, map[string]string{"Authorization": basic("u", read)}))
	ok := f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/team/vision/fraud-xgb/tags/list", nil, map[string]string{"Authorization": "Bearer " + tok})
	gatewaytest.WantStatus(t, ok, http.StatusOK)
	post := f.env.Do(http.MethodPost, f.env.Srv.URL+"/v2/token", strings.NewReader("grant_type=password&username=u&password="+read+"&service=x"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	gatewaytest.WantStatus(t, post, http.StatusOK)
	// The bearer reaches only the OCI routes.
	pkg := f.env.Do(http.MethodGet, f.env.PkgURL("fraud-xgb/1.0.0/files/MLmodel"), nil, map[string]string{"Authorization": "Bearer " + tok})
	gatewaytest.WantStatus(t, pkg, http.StatusUnauthorized)
	toks, err := f.env.Store.ListTokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range toks {
		if x.Name == "r" {
			if err := f.env.Store.RevokeToken(t.Context(), x.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	gone := f.env.Do(http.MethodGet, f.env.Srv.URL+"/v2/team/vision/fraud-xgb/tags/list", nil, map[string]string{"Authorization": "Bearer " + tok})
	wantOCIError(t, gone, http.StatusUnauthorized, "UNAUTHORIZED")
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func tokenFrom(t *testing.T, r gatewaytest.Response) string {
	t.Helper()
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r.JSON(t, &body)
	if body.Token == "" || body.Token != body.AccessToken || body.ExpiresIn <= 0 {
		t.Fatalf("token response %s", r.Body)
	}
	return body.Token
}

// With redirect_downloads, a layer blob is a 307 to the storage server, as every download is; oras-go
// follows it without its credentials and verifies the bytes.
func TestLayerBlobsFollowDownloadRedirects(t *testing.T) {
	env, p := gatewaytest.NewRedirecting(t, gateway.Config{Auth: true}, backends.RedirectPolicy{Expiry: 5 * time.Minute, Grace: time.Hour})
	store := env.Store
	admin, _, err := auth.IssueToken(t.Context(), store, auth.TokenRequest{ProjectPath: "team/vision", Scope: metadata.ScopeAdmin, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, host: strings.TrimPrefix(env.Srv.URL, "http://"), files: map[string][]byte{}, admin: admin}
	for path, b := range v1Files {
		f.put(t, "fraud-xgb", "1.0.0", path, b)
	}
	_, files := pull(t, f.repo(t, "team/vision/fraud-xgb", &orasauth.Credential{Username: "u", Password: admin}), "1.0.0")
	f.want(t, files, "fraud-xgb", "1.0.0")
	if n := p.Hits(); n != int64(len(v1Files)) {
		t.Fatalf("%d layers fetched from the storage server, want %d", n, len(v1Files))
	}
}

// A bearer from one replica's token endpoint is accepted by every replica that shares the signing key,
// and by no server with another key.
func TestBearersAcrossReplicas(t *testing.T) {
	secret := signing.Random()
	a := gatewaytest.New(t, gateway.Config{Auth: true, Signing: secret})
	read, _, err := auth.IssueToken(t.Context(), a.Store, auth.TokenRequest{ProjectPath: "team/vision", Scope: metadata.ScopeRead, Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(s *gateway.Server, bearer string) int {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	tok := tokenFrom(t, a.Do(http.MethodGet, a.Srv.URL+"/v2/token", nil, map[string]string{"Authorization": basic("u", read)}))
	replica := gateway.New(gateway.Config{Auth: true, Signing: secret}, a.Store, a.Backend, nil)
	stranger := gateway.New(gateway.Config{Auth: true, Signing: signing.Random()}, a.Store, a.Backend, nil)
	if got := serve(replica, tok); got != http.StatusOK {
		t.Fatalf("replica with the same key: %d", got)
	}
	if got := serve(stranger, tok); got != http.StatusUnauthorized {
		t.Fatalf("server with another key: %d", got)
	}
	tampered := []byte(tok)
	tampered[len(tampered)-3] ^= 3 // always a change; a byte that leaves the alphabet is refused as malformed
	if got := serve(replica, string(tampered)); got != http.StatusUnauthorized {
		t.Fatalf("tampered bearer: %d", got)
	}
}

func mustVersionOwner(t *testing.T, f *fixture, model, semver string) uint64 {
	t.Helper()
	m, err := f.env.Store.Model(t.Context(), metadata.ModelRef{Project: f.project(t), Name: model})
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.env.Store.Version(t.Context(), metadata.VersionRef{ModelID: m.ID, Semver: semver})
	if err != nil {
		t.Fatal(err)
	}
	return v.Owner()
}

// Two models with one OCI name and neither named so: the name is refused, naming both; a model that
// has the name exactly wins.
func TestOCINameClash(t *testing.T) {
	f := newFixture(t, false)
	f.put(t, "Res+Net", "1.0.0", "a.bin", []byte("first"))
	f.put(t, "RES+NET", "1.0.0", "a.bin", []byte("second"))
	url := f.env.Srv.URL + "/v2/team/vision/res-net/manifests/1.0.0"
	r := f.env.Get(url)
	wantOCIError(t, r, http.StatusNotFound, "NAME_UNKNOWN")
	if !strings.Contains(string(r.Body), `\"Res+Net\"`) || !strings.Contains(string(r.Body), `\"RES+NET\"`) {
		t.Fatalf("the clash does not name both models: %s", r.Body)
	}
	gatewaytest.WantStatus(t, f.env.Get(f.env.Srv.URL+"/v2/team/vision/Res+Net/manifests/1.0.0"), http.StatusOK)
	f.put(t, "res-net", "1.0.0", "a.bin", []byte("exact"))
	_, files := pull(t, f.repo(t, "team/vision/res-net", nil), "1.0.0")
	f.want(t, files, "res-net", "1.0.0")
}
