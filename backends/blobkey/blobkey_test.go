package blobkey_test

import (
	"math"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
)

func TestEveryKeyIsValid(t *testing.T) {
	keys := []string{blobkey.Probe()}
	for _, id := range []uint64{0, 1, 42, 0xabcdef, math.MaxUint64} {
		keys = append(keys, blobkey.File(id))
	}
	for _, k := range keys {
		if err := backends.ValidateKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, p := range []string{blobkey.FilePrefix, blobkey.ProbePrefix, blobkey.CandidatePrefix(7)} {
		// A valid List prefix: the beginning of some valid key.
		if err := backends.ValidateKey(p + "0"); err != nil {
			t.Errorf("prefix %q: %v", p, err)
		}
	}
}

func TestFileLayout(t *testing.T) {
	k := blobkey.File(42)
	if !strings.HasPrefix(k, "c/000000000000002a/") || len(k) != len("c/000000000000002a/")+32 {
		t.Fatalf("File(42) = %q, want c/000000000000002a/<32 hex>", k)
	}
	if !strings.HasPrefix(k, blobkey.FilePrefix) || !strings.HasPrefix(k, blobkey.CandidatePrefix(42)) {
		t.Fatalf("%q is outside its prefixes", k)
	}
	if other := blobkey.File(42); other == k {
		t.Fatalf("two files got the same key %q: the uid must be fresh per upload", k)
	}
	// Fixed-width ids: no candidate's prefix begins another's key.
	if strings.HasPrefix(blobkey.File(0x2a0), blobkey.CandidatePrefix(0x2a)) {
		t.Fatal("candidate 0x2a's prefix matches a key of candidate 0x2a0")
	}
}

func TestParseFile(t *testing.T) {
	for _, id := range []uint64{0, 1, 42, math.MaxUint64} {
		got, ok := blobkey.ParseFile(blobkey.File(id))
		if !ok || got != id {
			t.Errorf("ParseFile(File(%d)) = %d, %v", id, got, ok)
		}
	}
	good := "c/000000000000002a/0123456789abcdef0123456789abcdef"
	if id, ok := blobkey.ParseFile(good); !ok || id != 42 {
		t.Fatalf("ParseFile(%q) = %d, %v", good, id, ok)
	}
	for _, bad := range []string{
		"",
		blobkey.Probe(),
		"c/000000000000002a/",
		"c/000000000000002a/0123456789abcdef0123456789abcde",   // uid too short
		"c/000000000000002a/0123456789abcdef0123456789abcdef0", // uid too long
		"c/00000000000002a/0123456789abcdef0123456789abcdef0",  // id too short
		"c/000000000000002A/0123456789abcdef0123456789abcdef",  // uppercase
		"c/000000000000002a/0123456789abcdef0123456789abcdeg",
		"c/000000000000002a-0123456789abcdef0123456789abcdef",
		"x/000000000000002a/0123456789abcdef0123456789abcdef",
	} {
		if id, ok := blobkey.ParseFile(bad); ok {
			t.Errorf("ParseFile(%q) = %d, true; want false", bad, id)
		}
	}
}

func TestProbesStayOutOfTheFiles(t *testing.T) {
	p := blobkey.Probe()
	if !strings.HasPrefix(p, blobkey.ProbePrefix) || strings.HasPrefix(p, blobkey.FilePrefix) {
		t.Fatalf("probe key %q", p)
	}
	if blobkey.Probe() == p {
		t.Fatal("two probes got the same key")
	}
}
