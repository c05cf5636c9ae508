package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// orasVersion is the oras CLI the OCI end-to-end test pulls with, built from the Go module proxy.
const orasVersion = "v1.3.6"

var (
	orasOnce sync.Once
	orasBin  string
	orasErr  error
)

// orasBinary builds oras once per test binary (go install of the pinned version; the module and build
// caches make later runs quick) into TestMain's directory.
func orasBinary(t *testing.T) string {
	t.Helper()
	orasOnce.Do(func() {
		gobin := filepath.Join(e2eDir, "oras-bin")
		cmd := exec.Command("go", "install", "oras.land/oras/cmd/oras@"+orasVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			orasErr = err
			t.Logf("go install oras: %s", out)
			return
		}
		orasBin = filepath.Join(gobin, "oras")
	})
	if orasErr != nil {
		t.Fatalf("building oras %s: %v", orasVersion, orasErr)
	}
	return orasBin
}

// oras runs the oras CLI with a registry config of its own (no user's credentials), and returns its
// exit error and output.
func oras(t *testing.T, regConfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(orasBinary(t), append(args, "--plain-http", "--registry-config", regConfig)...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(regConfig))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func fileCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOCIPullWithORAS pulls model versions with the real oras CLI from a real `mlgate serve --auth`:
// by semver, alias and digest, through `oras login` (Basic → /v2/token → bearer), an mlgate token sent
// directly as a Bearer, and an identity token (OAuth2 refresh_token grant); another project's token
// gets what a missing repository gets; and serving stores no byte.
func TestOCIPullWithORAS(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	write, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "write")
	read, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "read")
	foreign, _ := createToken(t, dataDir, "--project", "other", "--scope", "admin")
	p := startServe(t, dataDir, "--auth")
	host := strings.TrimPrefix(p.base, "http://")

	files := map[string][]byte{
		"MLmodel":             []byte("artifact_path: model\nflavors:\n  sklearn: {}\n"),
		"model.pkl":           bytes.Repeat([]byte("weights!"), 3<<17),
		"sub/dir/weights.bin": bytes.Repeat([]byte{7, 1, 3}, 1<<18),
		"README.md":           []byte("# fraud model\n"),
		"copy/model.pkl":      bytes.Repeat([]byte("weights!"), 3<<17), // the same bytes as model.pkl: two layers, one digest
		"empty.txt":           {},
	}
	auth := map[string]string{"Authorization": "Bearer " + write}
	for path, b := range files {
		resp, body := do(t, http.MethodPut, p.url("fraud-xgb/1.4.0%2Bbuild.2/files/"+path), b, auth)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body := do(t, http.MethodPost, p.base+"/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow/registered-models/alias",
		[]byte(`{"name":"fraud-xgb","alias":"champion","version":"1"}`), map[string]string{"Authorization": "Bearer " + write, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set alias: %d %s", resp.StatusCode, body)
	}
	want := map[string]string{}
	for path, b := range files {
		s := sha256.Sum256(b)
		want[path] = hex.EncodeToString(s[:])
	}
	blobFiles := fileCount(t, dataDir)

	repo := host + "/team/vision/fraud-xgb"
	loggedIn := filepath.Join(work, "login", "config.json")
	if out, err := oras(t, loggedIn, "login", "-u", "anyone", "-p", read, host); err != nil {
		t.Fatalf("oras login: %v\n%s", err, out)
	}
	pullTo := func(name, regConfig string, ref string, extra ...string) string {
		t.Helper()
		dst := filepath.Join(work, name)
		out, err := oras(t, regConfig, append([]string{"pull", "-o", dst, ref}, extra...)...)
		if err != nil {
			t.Fatalf("oras pull %s: %v\n%s", ref, err, out)
		}
		sameSums(t, "oras pull "+ref, dirSums(t, dst), want)
		return out
	}
	pullTo("semver", loggedIn, repo+":1.4.0_build.2")
	pullTo("alias", loggedIn, repo+":champion")
	pullTo("latest", loggedIn, repo+":latest")

	// The manifest digest, as oras resolves it, pulls the same files.
	out, err := oras(t, loggedIn, "resolve", repo+":champion")
	digest := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("oras resolve: %v\n%s", err, out)
	}
	pullTo("digest", loggedIn, repo+"@"+digest)

	// An mlgate token sent directly as a Bearer, and as an identity token (refresh_token grant).
	none := filepath.Join(work, "none", "config.json")
	pullTo("bearer", none, repo+":1.4.0_build.2", "-H", "Authorization: Bearer "+read)
	pullTo("identity", none, repo+":champion", "--identity-token", read)

	// The manifest oras fetches is the ModelPack one, and the same digest on every request.
	out, err = oras(t, loggedIn, "manifest", "fetch", repo+"@"+digest)
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			MediaType   string            `json:"mediaType"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || m.ArtifactType != "application/vnd.cncf.model.manifest.v1+json" || len(m.Layers) != len(files) {
		t.Fatalf("oras manifest fetch: %v\n%s", err, out)
	}

	// Another project's token: not found, exactly as for a repository that does not exist.
	other := filepath.Join(work, "other", "config.json")
	if out, err := oras(t, other, "login", "-u", "x", "-p", foreign, host); err != nil {
		t.Fatalf("oras login with another project's token: %v\n%s", err, out)
	}
	for _, ref := range []string{repo + ":champion", host + "/team/vision/no-such-model:champion"} {
		out, err := oras(t, other, "pull", "-o", filepath.Join(work, "denied"), ref)
		if err == nil || !strings.Contains(out, "not found") {
			t.Fatalf("oras pull %s with another project's token: %v\n%s", ref, err, out)
		}
	}
	// No credentials: oras is told to log in.
	if out, err := oras(t, none, "pull", "-o", filepath.Join(work, "anon"), repo+":champion"); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("oras pull without credentials: %v\n%s", err, out)
	}
	// A push is refused with a clear message.
	src := filepath.Join(work, "push.txt")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	push := exec.Command(orasBinary(t), "push", "--plain-http", "--registry-config", loggedIn, repo+":9.9.9", "push.txt")
	push.Dir = work
	if out, err := push.CombinedOutput(); err == nil || !strings.Contains(string(out), "403") && !strings.Contains(string(out), "denied") {
		t.Fatalf("oras push with a read token: %v\n%s", err, out)
	}

	if after := fileCount(t, dataDir); after != blobFiles {
		t.Errorf("serving over OCI stored files: %d files in the data directory before, %d after", blobFiles, after)
	}
}
