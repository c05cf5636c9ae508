package oci

import (
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
)

func testVersion() (*metadata.Model, *metadata.Version, []modelversion.File) {
	model := &metadata.Model{ID: 9, Name: "fraud-xgb", DisplayName: "Fraud XGB", Description: "changes", Tags: []metadata.Tag{{Key: "k", Value: "v"}}}
	v := &metadata.Version{Seq: 3, Semver: "1.2.0+build.5", Description: "changes", Stage: "Production",
		CreatedAt: time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.FixedZone("x", 3600)), UpdatedAt: time.Now()}
	file := func(p, sum string, size int64) modelversion.File {
		return modelversion.File{File: &metadata.File{Path: "sub/" + p, SHA256: sum, Size: size, BlobKey: "c/x", CreatedAt: time.Now()}, Path: p}
	}
	return model, v, []modelversion.File{
		file("MLmodel", strings.Repeat("a", 64), 10),
		file("model.safetensors", strings.Repeat("b", 64), 20),
		file("nested/dir/notes.xyz", strings.Repeat("c", 64), 30),
	}
}

// The manifest of a fixed version is these exact bytes: nothing of the request, the clock, the
// version's mutable fields or map order gets in.
func TestBuildIsDeterministic(t *testing.T) {
	model, v, files := testVersion()
	b, err := Build(model, v, files)
	if err != nil {
		t.Fatal(err)
	}
	const wantConfig = `{"descriptor":{"createdAt":"2026-03-04T04:06:07.008Z","name":"fraud-xgb","version":"1.2.0+build.5"},` +
		`"modelfs":{"type":"layers","diffIds":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",` +
		`"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"]},` +
		`"config":{"format":"safetensors"}}`
	if string(b.Config) != wantConfig {
		t.Fatalf("config\n%s\nwant\n%s", b.Config, wantConfig)
	}
	wantManifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.cncf.model.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.cncf.model.config.v1+json","digest":"` + digestOf([]byte(wantConfig)) + `","size":` + itoa(len(wantConfig)) + `},` +
		`"layers":[` +
		`{"mediaType":"application/vnd.cncf.model.weight.config.v1.raw","digest":"sha256:` + strings.Repeat("a", 64) + `","size":10,"annotations":{"org.cncf.model.filepath":"MLmodel","org.opencontainers.image.title":"MLmodel"}},` +
		`{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"sha256:` + strings.Repeat("b", 64) + `","size":20,"annotations":{"org.cncf.model.filepath":"model.safetensors","org.opencontainers.image.title":"model.safetensors"}},` +
		`{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"sha256:` + strings.Repeat("c", 64) + `","size":30,"annotations":{"org.cncf.model.file.mediatype.untested":"true","org.cncf.model.filepath":"nested/dir/notes.xyz","org.opencontainers.image.title":"nested/dir/notes.xyz"}}],` +
		`"annotations":{"org.opencontainers.image.created":"2026-03-04T04:06:07.008Z","org.opencontainers.image.version":"1.2.0+build.5"}}`
	if string(b.Manifest) != wantManifest {
		t.Fatalf("manifest\n%s\nwant\n%s", b.Manifest, wantManifest)
	}
	if b.ManifestDigest != digestOf(b.Manifest) || b.ConfigDigest != digestOf(b.Config) {
		t.Fatal("digests are not of the bytes")
	}
	for range 50 {
		model2, v2, files2 := testVersion()
		model2.Description, v2.Description, v2.Stage, v2.UpdatedAt = "other", "other", "Archived", time.Now().Add(time.Hour)
		v2.Tags = []metadata.Tag{{Key: "x", Value: "y"}}
		again, err := Build(model2, v2, files2)
		if err != nil || again.ManifestDigest != b.ManifestDigest {
			t.Fatalf("rebuilt with other mutable fields: %s, want %s (%v)", again.ManifestDigest, b.ManifestDigest, err)
		}
	}
	// The file list is part of it.
	files[1].SHA256 = strings.Repeat("d", 64)
	if changed, _ := Build(model, v, files); changed.ManifestDigest == b.ManifestDigest {
		t.Fatal("a changed file kept the digest")
	}
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestLayerMediaType(t *testing.T) {
	for _, c := range []struct {
		path, want string
		tested     bool
	}{
		{"model.safetensors", MediaWeightRaw, true},
		{"model-00001-of-00002.safetensors", MediaWeightRaw, true},
		{"model.safetensors.index.json", MediaWeightConfig, true},
		{"llama.Q4_K_M.gguf", MediaWeightRaw, true},
		{"pytorch_model.bin", MediaWeightRaw, true},
		{"model/model.pkl", MediaWeightRaw, true},
		{"model.onnx", MediaWeightRaw, true},
		{"data/model.ubj", MediaWeightRaw, true},
		{"tokenizer.model", MediaWeightConfig, true},
		{"model/MLmodel", MediaWeightConfig, true},
		{"config.json", MediaWeightConfig, true},
		{"tokenizer_config.json", MediaWeightConfig, true},
		{"vocab.txt", MediaWeightConfig, true},
		{"merges.txt", MediaWeightConfig, true},
		{"params.yaml", MediaWeightConfig, true},
		{"README.md", MediaDocRaw, true},
		{"docs/Readme", MediaDocRaw, true},
		{"LICENSE", MediaDocRaw, true},
		{"license.txt", MediaDocRaw, true},
		{"model_card.json", MediaDocRaw, true},
		{"guide.pdf", MediaDocRaw, true},
		{"model/requirements.txt", MediaCodeRaw, true},
		{"model/conda.yaml", MediaCodeRaw, true},
		{"model/python_env.yaml", MediaCodeRaw, true},
		{"code/predict.py", MediaCodeRaw, true},
		{"Dockerfile", MediaCodeRaw, true},
		{"notebook.ipynb", MediaCodeRaw, true},
		{"input_example.csv", MediaDatasetRaw, true},
		{"eval/data.parquet", MediaDatasetRaw, true},
		{"serving.jsonl", MediaDatasetRaw, true},
		{"weights", MediaWeightRaw, false},
		{"model.xyz", MediaWeightRaw, false},
		{"notes.txt", MediaWeightRaw, false},
	} {
		got, tested := LayerMediaType(c.path)
		if got != c.want || tested != c.tested {
			t.Errorf("%s: %s (tested %v), want %s (%v)", c.path, got, tested, c.want, c.tested)
		}
	}
}

func TestWeightFormat(t *testing.T) {
	f := func(paths ...string) []modelversion.File {
		var out []modelversion.File
		for _, p := range paths {
			out = append(out, modelversion.File{File: &metadata.File{}, Path: p})
		}
		return out
	}
	for _, c := range []struct {
		files []modelversion.File
		want  string
	}{
		{f("a.gguf", "README.md"), "gguf"},
		{f("a-1.safetensors", "a-2.SAFETENSORS", "config.json"), "safetensors"},
		{f("a.gguf", "b.safetensors"), ""},
		{f("model.pkl"), ""},
		{f(), ""},
	} {
		if got := weightFormat(c.files); got != c.want {
			t.Errorf("%v: %q, want %q", c.files, got, c.want)
		}
	}
}

func TestParseRoute(t *testing.T) {
	for _, c := range []struct {
		rest string
		want route
	}{
		{"/", route{kind: routeBase}},
		{"", route{kind: routeBase}},
		{"/token", route{kind: routeToken}},
		{"/team/vision/m/manifests/1.0.0", route{kind: routeManifest, name: "team/vision/m", arg: "1.0.0"}},
		{"/a/manifests/b/manifests/latest", route{kind: routeManifest, name: "a/manifests/b", arg: "latest"}},
		{"/a/b/blobs/sha256:00", route{kind: routeBlob, name: "a/b", arg: "sha256:00"}},
		{"/a/b/blobs/uploads/", route{kind: routeUpload, name: "a/b"}},
		{"/a/b/blobs/uploads/123", route{kind: routeUpload, name: "a/b"}},
		{"/a/b/tags/list", route{kind: routeTags, name: "a/b"}},
		{"/a/b/referrers/sha256:00", route{kind: routeReferrers, name: "a/b", arg: "sha256:00"}},
		{"/manifests/1.0.0", route{kind: routeUnknown, name: "manifests/1.0.0"}},
		{"/a/b/files/x", route{kind: routeUnknown, name: "a/b/files/x"}},
		{"/_catalog", route{kind: routeUnknown}},
	} {
		if got := parseRoute(c.rest); got != c.want {
			t.Errorf("%q: %+v, want %+v", c.rest, got, c.want)
		}
	}
}

func TestRepositoryName(t *testing.T) {
	for in, want := range map[string]string{
		"fraud-xgb": "fraud-xgb", "Fraud_XGB": "fraud_xgb", "vision/Res+Net": "vision/res-net", "a.b-c": "a.b-c",
	} {
		if got := RepositoryName(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRouteAndName(f *testing.F) {
	for _, s := range []string{"/a/b/manifests/1", "/a/../b/blobs/sha256:0", "/%2e%2e/x/tags/list", "//manifests/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		rt := parseRoute(rest)
		if rt.name != "" && validateName(rt.name) == nil {
			for _, seg := range strings.Split(rt.name, "/") {
				if seg == ".." || seg == "." || seg == "" {
					t.Fatalf("%q: name %q passed validation", rest, rt.name)
				}
			}
		}
		_, _ = parseDigest(rt.arg, errUnknownForFuzz)
	})
}

var errUnknownForFuzz = metadata.ErrNotFound
