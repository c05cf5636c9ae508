// Package blobkey is the one definition of mlgate's blob key space. Every key mlgate hands a backend is
// made here, and this comment is the map of all of them:
//
//	c/<candidate id: 16 hex>/<file uid: 32 hex>   the bytes of one uploaded file (File)
//	mlgate-probe/<24 hex>                         a probe of a health check or round trip (Probe)
//
// Hex is lowercase; ids are fixed width so that keys sort by candidate id and no candidate's prefix is
// the beginning of another's. Nothing else is ever written, so anything else found in a backend was put
// there by something other than mlgate.
//
// The rules the layout keeps:
//
//   - Every key matches backends.KeyPattern, so no key starts with ".": a backend can keep private staging
//     areas (localfs's <root>/.staging/) that no key can reach or collide with.
//   - User-supplied names (projects, models, versions, file paths) never appear in a key. They live in
//     metadata only, so path traversal and escaping problems cannot reach storage, and renaming anything
//     moves no bytes.
//   - The file uid is random (128 bits) and new for every upload, not derived from the path or the
//     content: replacing a file writes a new blob instead of overwriting the one a download may still be
//     streaming, two uploads of one path never share a key, and a migration's copy never lands on its
//     source even when two configured backends are one storage.
//   - A file's key starts with its candidate's prefix (CandidatePrefix), so a sweep can work candidate by
//     candidate; fsck lists FilePrefix only.
//   - Probes live outside FilePrefix, so fsck never takes a probe left by a killed check for a file blob.
//
// Metadata stores each file's key as an opaque string; only this package knows its shape.
package blobkey

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// FilePrefix starts every file's key.
const FilePrefix = "c/"

// ProbePrefix starts every probe's key.
const ProbePrefix = "mlgate-probe/"

const (
	idLen  = 16 // hex digits of a candidate id
	uidLen = 32 // hex digits of a file uid
)

// File returns a fresh key for a new file of candidate candidateID: "c/<id>/<random uid>".
func File(candidateID uint64) string {
	var uid [uidLen / 2]byte
	_, _ = rand.Read(uid[:]) // never fails (crypto/rand)
	return CandidatePrefix(candidateID) + hex.EncodeToString(uid[:])
}

// CandidatePrefix is the prefix every file key of candidate candidateID starts with, and no other key.
func CandidatePrefix(candidateID uint64) string {
	return fmt.Sprintf("%s%0*x/", FilePrefix, idLen, candidateID)
}

// ParseFile returns the candidate id of a key shaped like File's; ok is false for any other key.
func ParseFile(key string) (candidateID uint64, ok bool) {
	rest, found := strings.CutPrefix(key, FilePrefix)
	if !found || len(rest) != idLen+1+uidLen || rest[idLen] != '/' || !isHex(rest[:idLen]) || !isHex(rest[idLen+1:]) {
		return 0, false
	}
	id, err := strconv.ParseUint(rest[:idLen], 16, 64)
	return id, err == nil
}

// Probe returns a fresh key for a probe blob, outside the files' key space.
func Probe() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return ProbePrefix + hex.EncodeToString(b[:])
}

// isHex accepts lowercase hex digits only, the form File writes.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
