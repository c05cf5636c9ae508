package boltstore

import (
	"bytes"
	"testing"
)

// The signing key survives a restart (it is what keeps multipart uploads valid across one), and two
// databases draw two keys.
func TestSigningKeyAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := openStore(t, path)
	first, err := s.SigningKey(ctx)
	must(t, err)
	must(t, s.Close())

	s = openStore(t, path)
	defer s.Close()
	again, err := s.SigningKey(ctx)
	must(t, err)
	if !bytes.Equal(first, again) {
		t.Fatal("the signing key changed across a reopen")
	}
	must(t, s.Verify(ctx))

	other := openStore(t, tempPath(t))
	defer other.Close()
	k, err := other.SigningKey(ctx)
	must(t, err)
	if bytes.Equal(k, first) {
		t.Fatal("two databases have one signing key")
	}
}
