package main

import (
	"errors"
	"strings"
	"testing"
)

// TestResolveMetadata covers the metadata section and MLGATE_METADATA_DSN together: what each
// combination selects, and the configuration errors, each wrapping ErrConfig with a message naming the fix.
func TestResolveMetadata(t *testing.T) {
	const dsn = "postgres://mlgate@db:5432/mlgate?sslmode=disable"
	const envDSN = "postgres://mlgate:secret@db2:5432/mlgate"
	for _, tc := range []struct {
		name    string
		yaml    string // the metadata section, "" for none
		env     string // MLGATE_METADATA_DSN
		want    metadataConfig
		wantErr string // a part of the error; "" for none
		parse   bool   // the error comes from parsing the file already
	}{
		{name: "no section", want: metadataConfig{Type: metadataBolt}},
		{name: "bolt", yaml: "metadata: {type: bolt}", want: metadataConfig{Type: metadataBolt}},
		{name: "empty section", yaml: "metadata: {}", want: metadataConfig{Type: metadataBolt}},
		{name: "postgres", yaml: "metadata: {type: postgres, dsn: \"" + dsn + "\"}", want: metadataConfig{Type: metadataPostgres, DSN: dsn}},
		{name: "env overrides dsn", yaml: "metadata: {type: postgres, dsn: \"" + dsn + "\"}", env: envDSN,
			want: metadataConfig{Type: metadataPostgres, DSN: envDSN}},
		{name: "env alone selects postgres", env: envDSN, want: metadataConfig{Type: metadataPostgres, DSN: envDSN}},
		{name: "env gives the dsn of type postgres", yaml: "metadata: {type: postgres}", env: envDSN,
			want: metadataConfig{Type: metadataPostgres, DSN: envDSN}},
		{name: "dsn without type implies postgres", yaml: "metadata: {dsn: \"" + dsn + "\"}", want: metadataConfig{Type: metadataPostgres, DSN: dsn}},
		{name: "unknown type", yaml: "metadata: {type: mysql}", wantErr: `metadata.type "mysql": want bolt (the default) or postgres`, parse: true},
		{name: "postgres without dsn", yaml: "metadata: {type: postgres}", wantErr: "no DSN is given: set metadata.dsn or MLGATE_METADATA_DSN"},
		{name: "dsn with bolt", yaml: "metadata: {type: bolt, dsn: \"" + dsn + "\"}", wantErr: "metadata.dsn is given but metadata.type is bolt", parse: true},
		{name: "env with bolt", yaml: "metadata: {type: bolt}", env: envDSN, wantErr: "MLGATE_METADATA_DSN is set but the config file's metadata.type is bolt"},
		{name: "unknown key", yaml: "metadata: {type: postgres, url: x}", wantErr: "field url not found", parse: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, err := parseFileConfig(strings.NewReader(tc.yaml), backendTypes())
			if tc.parse {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse: got %v, want ErrConfig with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			getenv := func(name string) string {
				if name == metadataDSNEnv {
					return tc.env
				}
				return ""
			}
			got, err := resolveMetadata(fc, getenv)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want ErrConfig with %q", err, tc.wantErr)
				}
				if tc.env != "" && strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the DSN's password: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	// Without a file at all, only the variable decides.
	if got, err := resolveMetadata(nil, func(string) string { return "" }); err != nil || got.Type != metadataBolt {
		t.Fatalf("no file: %+v, %v", got, err)
	}
}

// TestCheckSharedBackends: PostgreSQL refuses localfs, declared or the embedded default, saying why;
// bbolt takes anything, and PostgreSQL takes S3 and plugins.
func TestCheckSharedBackends(t *testing.T) {
	pg := metadataConfig{Type: metadataPostgres, DSN: "postgres://x"}
	bolt := metadataConfig{Type: metadataBolt}
	local := backendSpec{Name: "local", Type: "localfs"}
	s3 := backendSpec{Name: "s3", Type: "s3"}
	plugin := backendSpec{Name: "p", Plugin: &pluginSpec{Path: "/bin/p"}}
	for _, tc := range []struct {
		name     string
		mc       metadataConfig
		specs    []backendSpec
		fromFile bool
		wantErr  string
	}{
		{"bolt with localfs", bolt, []backendSpec{local}, false, ""},
		{"postgres with s3 and a plugin", pg, []backendSpec{s3, plugin}, true, ""},
		{"postgres with a declared localfs", pg, []backendSpec{s3, local}, true, `backend "local" is localfs: another replica could not read the files it stores, and localfs keeps multipart upload state per process`},
		{"postgres with the default", pg, []backendSpec{local}, false, "the config declares no backends, so the default is localfs at <data-dir>/blobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSharedBackends(tc.mc, tc.specs, tc.fromFile)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want ErrConfig with %q", err, tc.wantErr)
			}
		})
	}
}
