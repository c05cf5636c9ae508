package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// hfHubSrcEnv names the src folder of a huggingface_hub source tree. The client cannot be installed in
// CI (no PyPI) and the project holds none of its code, so TestHFClientE2E runs only where it is set.
const hfHubSrcEnv = "MLGATE_HF_HUB_SRC"

// hfRecordEnv, when set to a folder, makes TestHFClientE2E write the exchanges there as
// client-noauth.json and client-auth.json: the test vectors of gateway/hf/testdata.
const hfRecordEnv = "MLGATE_HF_RECORD"

// TestHFClientE2E runs the real huggingface_hub client (testdata/hf/hf_client.py, with Debian's
// /usr/bin/python3) against a real `mlgate serve`, without and with --auth: model_info,
// list_repo_files, list_repo_tree, snapshot_download and hf_hub_download by semver, alias, main and
// sha of a version with a nested folder and a 50 MB file, every file's sha256 compared, the client's
// three not-found exceptions, and under --auth HF_TOKEN with a read token, no token, an unknown token
// and another project's token. Serving adds no blob file.
//
//	MLGATE_HF_HUB_SRC=/tmp/hfhub/src go test -run TestHFClientE2E -v ./cmd/mlgate/
func TestHFClientE2E(t *testing.T) {
	src := os.Getenv(hfHubSrcEnv)
	if src == "" {
		t.Skipf("%s is not set: the huggingface_hub client is not available (see README, Hugging Face clients)", hfHubSrcEnv)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "hf", "hf_client.py"))
	if err != nil {
		t.Fatal(err)
	}
	for _, authOn := range []bool{false, true} {
		name := "noauth"
		if authOn {
			name = "auth"
		}
		t.Run(name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			var serveArgs, tokens []string
			if authOn {
				write, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "write")
				read, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "read")
				foreign, _ := createToken(t, dataDir, "--project", "other", "--scope", "admin")
				serveArgs = []string{"--auth"}
				tokens = []string{"--token", write, "--read-token", read, "--foreign-token", foreign}
			}
			p := startServe(t, dataDir, serveArgs...)
			run := func(extra ...string) {
				t.Helper()
				cmd := exec.Command("/usr/bin/python3", append(append([]string{script, "--url", p.base}, tokens...), extra...)...)
				cmd.Env = append(os.Environ(), "HF_HUB_SRC="+src)
				out, err := cmd.CombinedOutput()
				t.Logf("%s", out)
				if err != nil {
					t.Fatalf("hf_client.py %v: %v", extra, err)
				}
			}
			run("--populate-only")
			blobs := fileCount(t, dataDir)
			var record []string
			if dir := os.Getenv(hfRecordEnv); dir != "" {
				record = []string{"--record", filepath.Join(dir, "client-"+name+".json")}
			}
			run(record...)
			if n := fileCount(t, dataDir); n != blobs {
				t.Errorf("serving the client changed the data dir's files: %d, %d before", n, blobs)
			}
		})
	}
}
