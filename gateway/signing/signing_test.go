package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestKeysPerPurpose(t *testing.T) {
	s, err := New(bytes.Repeat([]byte{7}, MinSecretLen))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := New(bytes.Repeat([]byte{7}, MinSecretLen))
	other, _ := New(bytes.Repeat([]byte{8}, MinSecretLen))
	a, b := s.Key("purpose a v1", 32), s.Key("purpose b v1", 32)
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("key lengths %d, %d", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Error("two purposes got one key")
	}
	if !bytes.Equal(a, same.Key("purpose a v1", 32)) {
		t.Error("one secret and purpose gave two keys")
	}
	if bytes.Equal(a, other.Key("purpose a v1", 32)) {
		t.Error("two secrets gave one key")
	}
	if bytes.Contains(a, bytes.Repeat([]byte{7}, 8)) || bytes.Equal(a, s.b) {
		t.Error("the key looks like the secret")
	}
	if s.ID() != same.ID() || s.ID() == other.ID() || len(s.ID()) != 16 {
		t.Errorf("IDs %q %q %q", s.ID(), same.ID(), other.ID())
	}
	if bytes.Equal(Random().b, Random().b) {
		t.Error("Random repeated itself")
	}
}

func TestNewCopiesAndRefusesShort(t *testing.T) {
	raw := bytes.Repeat([]byte{1}, MinSecretLen)
	s, err := New(raw)
	if err != nil {
		t.Fatal(err)
	}
	k := s.Key("p", 32)
	raw[0] = 2
	if !bytes.Equal(k, s.Key("p", 32)) {
		t.Error("the Secret follows the caller's slice")
	}
	if _, err := New(raw[:MinSecretLen-1]); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("short secret: %v", err)
	}
}

func TestDecode(t *testing.T) {
	raw := make([]byte, MinSecretLen)
	for i := range raw {
		raw[i] = byte(i*37 + 250) // both base64 alphabets' special characters appear
	}
	want, _ := New(raw)
	for name, text := range map[string]string{
		"hex":                 hex.EncodeToString(raw),
		"HEX":                 strings.ToUpper(hex.EncodeToString(raw)),
		"base64":              base64.StdEncoding.EncodeToString(raw),
		"base64 unpadded":     base64.RawStdEncoding.EncodeToString(raw),
		"base64url":           base64.URLEncoding.EncodeToString(raw),
		"base64url unpadded":  base64.RawURLEncoding.EncodeToString(raw),
		"file with a newline": base64.StdEncoding.EncodeToString(raw) + "\n",
		"spaces around":       "  " + hex.EncodeToString(raw) + " \r\n",
		"hex in two lines":    hex.EncodeToString(raw[:16]) + "\n" + hex.EncodeToString(raw[16:]),
		"base64 in lines":     base64.StdEncoding.EncodeToString(raw)[:20] + "\n" + base64.StdEncoding.EncodeToString(raw)[20:] + "\n",
	} {
		got, err := Decode(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got.b, want.b) {
			t.Errorf("%s: decoded to other bytes", name)
		}
	}
	long := bytes.Repeat([]byte{9}, 64)
	if got, err := Decode(base64.StdEncoding.EncodeToString(long)); err != nil || len(got.b) != 64 {
		t.Errorf("64-byte secret: %v", err)
	}

	secretish := "not base64 !! but a secret-looking value"
	for name, text := range map[string]string{
		"empty":           "",
		"blank":           " \n",
		"short hex":       hex.EncodeToString(raw[:MinSecretLen-1]),
		"short base64":    base64.StdEncoding.EncodeToString(raw[:MinSecretLen-1]),
		"odd hex":         hex.EncodeToString(raw) + "a",
		"not an encoding": secretish,
	} {
		_, err := Decode(text)
		if !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("%s: %v, want ErrInvalidSecret", name, err)
			continue
		}
		if len(strings.TrimSpace(text)) > 8 && strings.Contains(err.Error(), strings.TrimSpace(text)[:8]) {
			t.Errorf("%s: the message quotes the value: %v", name, err)
		}
	}
}
