// Package signing holds the instance's signing secret: the one secret from which mlgate derives every key
// it signs or seals with (today the multipart upload ids and part URLs of the mlflow-artifacts proxy).
// Replicas that share the secret accept each other's signatures, and a restart keeps them valid, so the
// secret is configuration (or kept in the metadata store), never drawn per process in production.
//
// Each purpose gets its own key, derived with HKDF-SHA256 (RFC 5869) under a distinct info string, so
// that a value signed for one purpose is never valid for another and one secret serves them all.
//
// The secret never appears in an error or a log line: ID is the one thing about it that may be shown.
package signing

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinSecretLen is the shortest secret accepted, in bytes: 256 bits, the strength of the keys derived
// from it.
const MinSecretLen = 32

// ErrInvalidSecret is returned for a secret that is too short or not in the text format Decode reads.
var ErrInvalidSecret = errors.New("invalid signing key")

// Secret is the instance's signing secret. The zero value is not usable; build one with New or Random.
type Secret struct {
	b []byte
}

// New returns a Secret holding a copy of secret. ErrInvalidSecret when it has fewer than MinSecretLen
// bytes (the message gives the length, never the bytes).
func New(secret []byte) (*Secret, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d random bytes", ErrInvalidSecret, len(secret), MinSecretLen)
	}
	return &Secret{b: append([]byte(nil), secret...)}, nil
}

// Random returns a Secret of MinSecretLen bytes from crypto/rand. Signatures made with it die with the
// process: it is for tests and for embedders that do not configure one.
func Random() *Secret {
	b := make([]byte, MinSecretLen)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return &Secret{b: b}
}

// Key derives the n-byte key of one purpose. purpose must be a constant naming the use and its
// version (such as "mlgate mpu upload-id aes-256-gcm v1"): distinct purposes give independent keys.
func (s *Secret) Key(purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, s.b, nil, purpose, n)
	if err != nil {
		// Only an n beyond 255 hash lengths fails, a programming error.
		panic("signing: " + err.Error())
	}
	return k
}

// idPurpose derives ID's value; no signature uses it.
const idPurpose = "mlgate signing-key id v1"

// ID is a short fingerprint of the secret (16 hex digits), derived one-way under its own purpose, so
// that logs can show whether replicas share a key without telling anything about it.
func (s *Secret) ID() string { return hex.EncodeToString(s.Key(idPurpose, 8)) }

// Decode reads the text form of a secret, as MLGATE_SIGNING_KEY or a signing_key_file holds it: hex
// (only the digits 0-9 a-f A-F, such as `openssl rand -hex 32` prints), otherwise base64 (standard or
// URL alphabet, padded or not, such as `openssl rand -base64 32` prints), of at least MinSecretLen
// bytes. Whitespace is ignored, so a file's final newline and base64 wrapped in lines (as `base64`
// prints more than 57 bytes) are fine. ErrInvalidSecret for anything else; the message never quotes
// the text.
func Decode(text string) (*Secret, error) {
	text = strings.Join(strings.Fields(text), "")
	if text == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	var (
		b   []byte
		err error
	)
	if isHex(text) {
		if b, err = hex.DecodeString(text); err != nil {
			return nil, fmt.Errorf("%w: hex with an odd number of digits", ErrInvalidSecret)
		}
	} else if b, err = decodeBase64(text); err != nil {
		return nil, fmt.Errorf("%w: neither hex nor base64", ErrInvalidSecret)
	}
	return New(b)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// decodeBase64 accepts both alphabets, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
