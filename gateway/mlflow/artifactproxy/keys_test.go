package artifactproxy

import (
	"testing"

	"github.com/mlgate/mlgate/gateway/signing"
)

// Keys built from one secret, in two proxies or two processes, agree; keys of another secret do not.
func TestMPUKeysShared(t *testing.T) {
	secret := signing.Random()
	a, b, other := newMPUKeys(secret), newMPUKeys(secret), newMPUKeys(signing.Random())
	tok := a.seal(mpuToken{Project: 1, Candidate: 2, Path: "m/model.bin", Key: "c/k", Upload: "u", Backend: "s3", Parts: 3})
	got, err := b.open(tok)
	if err != nil || got.Path != "m/model.bin" || got.Key != "c/k" || got.Upload != "u" || got.Backend != "s3" || got.Parts != 3 {
		t.Fatalf("open by a proxy with the same secret: %+v, %v", got, err)
	}
	if a.partSig(tok, 1, 99) != b.partSig(tok, 1, 99) {
		t.Error("part signatures differ under one secret")
	}
	if _, err := other.open(tok); err == nil {
		t.Error("a proxy with another secret opened the upload id")
	}
	if a.partSig(tok, 1, 99) == other.partSig(tok, 1, 99) {
		t.Error("part signatures agree under different secrets")
	}
	// The two purposes have different keys: the MAC key is not the AES key.
	if string(a.macKey) == string(secret.Key(mpuTokenKeyPurpose, 32)) {
		t.Error("part URLs are signed with the upload ids' key")
	}
}
