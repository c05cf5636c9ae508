package hf

import (
	"testing"

	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
)

func file(path string, size int64, sha string) modelversion.File {
	return modelversion.File{File: &metadata.File{Path: "owner/" + path, Size: size, SHA256: sha, BlobKey: "k/" + path}, Path: path}
}

// A file's blob id and pointer size are what the Hub reports for an LFS file (the pair from
// huggingface_hub's own list_repo_tree example, gpt2's pytorch_model.bin).
func TestBlobIDIsTheHubsLFSPointerID(t *testing.T) {
	const sha, size = "9be78edb5b928eba33aa88f431551348f7466ba9f5ef3daf1d552398722a5436", 548123560
	if got := blobID(sha, size); got != "64eaa9c526867e404b68f2c5d66fd78e27026523" {
		t.Errorf("blob id %s", got)
	}
	if got := len(lfsPointer(sha, size)); got != 134 {
		t.Errorf("pointer size %d", got)
	}
}

// The revision sha depends on the files' paths, sizes and sha256 only, never on their order, blob
// keys, owners or times; any change to one of them changes it. Its value is pinned: a change of
// format changes every client's cache key, so it must be deliberate (and revisionDomain bumped).
func TestRevisionSHA(t *testing.T) {
	a := file("config.json", 20, "aa")
	b := file("sub/w.bin", 7, "bb")
	s1 := NewSnapshot(&metadata.Version{Semver: "1.0.0"}, []modelversion.File{a, b})
	b2 := b
	b2.File = &metadata.File{Path: "other/sub/w.bin", Size: 7, SHA256: "bb", BlobKey: "elsewhere"}
	s2 := NewSnapshot(&metadata.Version{Semver: "2.0.0"}, []modelversion.File{b2, a})
	if s1.SHA != s2.SHA || s1.Files[0].Path != "config.json" {
		t.Fatalf("same files, other order, keys and version: %s vs %s", s1.SHA, s2.SHA)
	}
	if got := RevisionSHA(s1.Files); got != "0227b5b701a948570aa346c248e2be18dae32acf" {
		t.Fatalf("sha %q", got)
	}
	for name, files := range map[string][]modelversion.File{
		"a path":   {a, file("sub/x.bin", 7, "bb")},
		"a size":   {a, file("sub/w.bin", 8, "bb")},
		"a sha256": {a, file("sub/w.bin", 7, "bc")},
		"a file":   {a},
		"no file":  nil,
	} {
		if got := NewSnapshot(&metadata.Version{}, files).SHA; got == s1.SHA {
			t.Errorf("changing %s kept the sha", name)
		}
	}
}

// Revision shas are recognised as the client recognises commits: 40 lowercase hex digits.
func TestIsSHA(t *testing.T) {
	for rev, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef01234567": true,
		"0123456789ABCDEF0123456789abcdef01234567": false,
		"0123456789abcdef0123456789abcdef0123456":  false,
		"main": false, "1.0.0": false, "": false,
	} {
		if isSHA(rev) != want {
			t.Errorf("isSHA(%q) = %v", rev, !want)
		}
	}
}
