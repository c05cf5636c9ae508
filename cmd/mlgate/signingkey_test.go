package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// keyText is the base64 of 32 bytes of b, and its Secret's ID.
func keyText(t *testing.T, b byte) (string, string) {
	t.Helper()
	raw := bytes.Repeat([]byte{b}, signing.MinSecretLen)
	s, err := signing.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), s.ID()
}

// signingConfig reads a config file whose signing_key_file is keyFile, as serve does.
func signingConfig(t *testing.T, keyFile string) *config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mlgate.yaml")
	if err := os.WriteFile(path, []byte("signing_key_file: "+keyFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := readFileConfig(path, backendTypes())
	if err != nil {
		t.Fatal(err)
	}
	return &config{ConfigFile: path, file: fc}
}

func fakeEnv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestSigningKeyPrecedence(t *testing.T) {
	fileText, fileID := keyText(t, 1)
	envText, envID := keyText(t, 2)
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(keyFile, []byte(fileText+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := signingConfig(t, keyFile)

	// The variable wins over the file, as every MLGATE_* variable wins over the file.
	s, source, err := configuredSigningKey(fakeEnv(map[string]string{signingKeyEnv: envText}), cfg, nil)
	if err != nil || s.ID() != envID || source != signingKeyEnv {
		t.Fatalf("variable and file: %v, %q, %v", s, source, err)
	}
	s, source, err = configuredSigningKey(fakeEnv(nil), cfg, nil)
	if err != nil || s.ID() != fileID || source != "signing_key_file "+keyFile {
		t.Fatalf("file alone: %v, %q, %v", s, source, err)
	}
	s, source, err = configuredSigningKey(fakeEnv(map[string]string{signingKeyEnv: envText}), &config{}, nil)
	if err != nil || s.ID() != envID || source != signingKeyEnv {
		t.Fatalf("variable without a config file: %v, %q, %v", s, source, err)
	}
	// Neither: the store's.
	if s, source, err = configuredSigningKey(fakeEnv(nil), &config{}, nil); s != nil || source != "" || err != nil {
		t.Fatalf("nothing configured: %v, %q, %v", s, source, err)
	}
	if s, _, err = configuredSigningKey(fakeEnv(nil), signingConfigWithout(t), nil); s != nil || err != nil {
		t.Fatalf("config file without signing_key_file: %v, %v", s, err)
	}
}

func signingConfigWithout(t *testing.T) *config {
	t.Helper()
	fc, err := parseFileConfig(strings.NewReader("addr: 127.0.0.1:6000\n"), backendTypes())
	if err != nil {
		t.Fatal(err)
	}
	return &config{ConfigFile: "mlgate.yaml", file: fc}
}

// A key that cannot be used is a configuration error naming the variable or the file, never the value.
func TestSigningKeyRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := hex.EncodeToString(bytes.Repeat([]byte{0xab}, signing.MinSecretLen-1))
	for name, keyFile := range map[string]string{
		"missing file":   filepath.Join(dir, "absent.key"),
		"short key":      write("short.key", short+"\n"),
		"not a key":      write("text.key", "this is not a key, it is a sentence!\n"),
		"empty file":     write("empty.key", ""),
		"directory":      dir,
		"oversized file": write("big.key", strings.Repeat("a", maxSigningKeyFile+2)),
	} {
		_, _, err := configuredSigningKey(fakeEnv(nil), signingConfig(t, keyFile), nil)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "signing_key_file "+keyFile) {
			t.Errorf("%s: %v, want ErrConfig naming %s", name, err, keyFile)
			continue
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), "sentence") {
			t.Errorf("%s: the message shows the file's content: %v", name, err)
		}
	}
	for name, text := range map[string]string{"short": short, "not a key": "hunter2 is my password"} {
		_, _, err := configuredSigningKey(fakeEnv(map[string]string{signingKeyEnv: text}), &config{}, nil)
		if !errors.Is(err, ErrConfig) || !errors.Is(err, signing.ErrInvalidSecret) || !strings.Contains(err.Error(), signingKeyEnv) {
			t.Errorf("%s variable: %v, want ErrConfig naming %s", name, err, signingKeyEnv)
		}
		if err != nil && strings.Contains(err.Error(), text) {
			t.Errorf("%s variable: the message shows the value: %v", name, err)
		}
	}
}

// Without configuration the store's key is used, the same one at every start.
func TestStoredSigningKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlgate.db")
	ids := make([]string, 2)
	for i := range ids {
		st, err := boltstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := storedSigningKey(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = s.ID()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] != ids[1] {
		t.Fatalf("the stored key changed across a restart: %s, %s", ids[0], ids[1])
	}
}
