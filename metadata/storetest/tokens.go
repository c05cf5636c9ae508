package storetest

import (
	"strings"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

func (f *fx) token(id, project string, scope metadata.TokenScope, secret string) *metadata.Token {
	f.Helper()
	t := &metadata.Token{ID: id, ProjectPath: project, Scope: scope, SecretHash: sha(secret)}
	if err := f.s.CreateToken(f.ctx, t); err != nil {
		f.Fatalf("CreateToken(%q): %v", id, err)
	}
	return t
}

var tokenTests = []test{
	{"CreateAndLookup", func(f *fx) {
		exp := time.Date(2031, 1, 2, 3, 4, 5, 6e6, time.UTC)
		t := &metadata.Token{ID: "0123456789abcdef", Name: "ci upload", ProjectPath: "team/vision",
			Scope: metadata.ScopeWrite, SecretHash: sha("s1"), ExpiresAt: exp}
		f.wantErr("CreateToken", f.s.CreateToken(f.ctx, t), nil)
		if t.CreatedAt.IsZero() {
			f.Error("CreatedAt not filled")
		}
		got, err := f.s.TokenBySecretHash(f.ctx, sha("s1"))
		if err != nil {
			f.Fatalf("TokenBySecretHash: %v", err)
		}
		if got.ID != t.ID || got.Name != t.Name || got.ProjectPath != "team/vision" || got.Scope != metadata.ScopeWrite ||
			got.SecretHash != sha("s1") || !got.ExpiresAt.Equal(exp) || !got.CreatedAt.Equal(t.CreatedAt) || got.Revoked {
			f.Errorf("TokenBySecretHash = %+v, want %+v", got, t)
		}
		// A token does not create its project: that happens on the first write through it.
		_, err = f.s.Project(f.ctx, metadata.ProjectRef{Path: "team/vision"})
		f.wantErr("Project after CreateToken", err, metadata.ErrNotFound)

		_, err = f.s.TokenBySecretHash(f.ctx, sha("other"))
		f.wantErr("TokenBySecretHash(unknown)", err, metadata.ErrNotFound)
		_, err = f.s.TokenBySecretHash(f.ctx, "not-hex")
		f.wantErr("TokenBySecretHash(malformed)", err, metadata.ErrNotFound)
		_, err = f.s.TokenBySecretHash(f.ctx, "")
		f.wantErr("TokenBySecretHash(empty)", err, metadata.ErrNotFound)
	}},
	{"Validation", func(f *fx) {
		good := metadata.Token{ID: "abc", ProjectPath: "p", Scope: metadata.ScopeRead, SecretHash: sha("x")}
		for name, mutate := range map[string]func(t *metadata.Token){
			"empty id":          func(t *metadata.Token) { t.ID = "" },
			"id with space":     func(t *metadata.Token) { t.ID = "a b" },
			"id with slash":     func(t *metadata.Token) { t.ID = "a/b" },
			"long id":           func(t *metadata.Token) { t.ID = strings.Repeat("a", metadata.MaxTokenIDLen+1) },
			"long name":         func(t *metadata.Token) { t.Name = strings.Repeat("n", metadata.MaxTokenNameLen+1) },
			"bad utf-8 name":    func(t *metadata.Token) { t.Name = "\xff" },
			"empty project":     func(t *metadata.Token) { t.ProjectPath = "" },
			"bad project":       func(t *metadata.Token) { t.ProjectPath = "a//b" },
			"zero scope":        func(t *metadata.Token) { t.Scope = 0 },
			"unknown scope":     func(t *metadata.Token) { t.Scope = metadata.ScopeAdmin + 1 },
			"short hash":        func(t *metadata.Token) { t.SecretHash = "abcd" },
			"uppercase hash":    func(t *metadata.Token) { t.SecretHash = strings.ToUpper(sha("x")) },
			"empty hash":        func(t *metadata.Token) { t.SecretHash = "" },
			"hash not hex":      func(t *metadata.Token) { t.SecretHash = strings.Repeat("z", 64) },
			"secret, not hash":  func(t *metadata.Token) { t.SecretHash = "mlg_secret" },
			"hash of 33 bytes":  func(t *metadata.Token) { t.SecretHash = sha("x") + "00" },
			"hash of 31 bytes":  func(t *metadata.Token) { t.SecretHash = sha("x")[:62] },
			"odd-length hash":   func(t *metadata.Token) { t.SecretHash = sha("x")[:63] },
			"hash with newline": func(t *metadata.Token) { t.SecretHash = sha("x")[:63] + "\n" },
		} {
			t := good
			mutate(&t)
			f.wantErr("CreateToken("+name+")", f.s.CreateToken(f.ctx, &t), metadata.ErrInvalid)
		}
		toks, err := f.s.ListTokens(f.ctx)
		if err != nil || len(toks) != 0 {
			f.Errorf("invalid tokens were stored: %d, %v", len(toks), err)
		}

		t := good
		f.wantErr("CreateToken(good)", f.s.CreateToken(f.ctx, &t), nil)
		dupID := good
		dupID.SecretHash = sha("y")
		f.wantErr("CreateToken(same id)", f.s.CreateToken(f.ctx, &dupID), metadata.ErrExists)
		dupHash := good
		dupHash.ID = "other"
		f.wantErr("CreateToken(same hash)", f.s.CreateToken(f.ctx, &dupHash), metadata.ErrExists)
		_, err = f.s.TokenBySecretHash(f.ctx, sha("y"))
		f.wantErr("the refused duplicate's hash", err, metadata.ErrNotFound)
	}},
	{"Instance", func(f *fx) {
		// An instance token reaches no project: it has no project path, and must not have one.
		t := &metadata.Token{ID: "inst", Name: "ops", Instance: true, Scope: metadata.ScopeAdmin, SecretHash: sha("i1")}
		f.wantErr("CreateToken(instance)", f.s.CreateToken(f.ctx, t), nil)
		got, err := f.s.TokenBySecretHash(f.ctx, sha("i1"))
		if err != nil || !got.Instance || got.ProjectPath != "" || got.Scope != metadata.ScopeAdmin || got.Name != "ops" {
			f.Errorf("instance token lookup = %+v, %v", got, err)
		}
		ro := &metadata.Token{ID: "inst-ro", Instance: true, Scope: metadata.ScopeRead, SecretHash: sha("i2")}
		f.wantErr("CreateToken(read-only instance)", f.s.CreateToken(f.ctx, ro), nil)
		bad := &metadata.Token{ID: "inst-p", Instance: true, ProjectPath: "team/vision", Scope: metadata.ScopeAdmin, SecretHash: sha("i3")}
		f.wantErr("CreateToken(instance with a project)", f.s.CreateToken(f.ctx, bad), metadata.ErrInvalid)
		noScope := &metadata.Token{ID: "inst-0", Instance: true, SecretHash: sha("i4")}
		f.wantErr("CreateToken(instance without scope)", f.s.CreateToken(f.ctx, noScope), metadata.ErrInvalid)
		// A project token keeps needing its project, and lists as one.
		f.token("proj", "p", metadata.ScopeAdmin, "p1")
		toks, err := f.s.ListTokens(f.ctx)
		if err != nil || len(toks) != 3 {
			f.Fatalf("ListTokens: %d, %v", len(toks), err)
		}
		kinds := map[string]bool{}
		for _, t := range toks {
			kinds[t.ID] = t.Instance
		}
		if !kinds["inst"] || !kinds["inst-ro"] || kinds["proj"] {
			f.Errorf("ListTokens instance flags %v", kinds)
		}
		f.wantErr("RevokeToken(instance)", f.s.RevokeToken(f.ctx, "inst"), nil)
		if got, err := f.s.TokenBySecretHash(f.ctx, sha("i1")); err != nil || !got.Revoked || !got.Instance {
			f.Errorf("revoked instance token = %+v, %v", got, err)
		}
	}},
	{"ListAndRevoke", func(f *fx) {
		toks, err := f.s.ListTokens(f.ctx)
		if err != nil || len(toks) != 0 {
			f.Fatalf("ListTokens on an empty store: %v, %v", toks, err)
		}
		// bb takes the store's clock; the others are created later but dated earlier, so the order is
		// by CreatedAt, not by insertion or id.
		bb := f.token("bb", "p", metadata.ScopeRead, "bb-secret")
		base := bb.CreatedAt.Add(-24 * time.Hour)
		for i, id := range []string{"zz", "aa", "mm"} {
			t := &metadata.Token{ID: id, ProjectPath: "p" + id, Scope: metadata.TokenScope(i + 1),
				SecretHash: sha(id), CreatedAt: base.Add(time.Duration(i) * time.Hour)}
			f.wantErr("CreateToken("+id+")", f.s.CreateToken(f.ctx, t), nil)
		}

		ids := func() []string {
			toks, err := f.s.ListTokens(f.ctx)
			if err != nil {
				f.Fatalf("ListTokens: %v", err)
			}
			var out []string
			for _, t := range toks {
				if t.SecretHash == "" {
					f.Errorf("token %s listed without its hash", t.ID)
				}
				r := ""
				if t.Revoked {
					r = "!"
				}
				out = append(out, t.ID+r)
			}
			return out
		}
		if got := strings.Join(ids(), " "); got != "zz aa mm bb" {
			f.Errorf("ListTokens order %q, want oldest first: zz aa mm bb", got)
		}

		f.wantErr("RevokeToken(aa)", f.s.RevokeToken(f.ctx, "aa"), nil)
		f.wantErr("RevokeToken(aa) again", f.s.RevokeToken(f.ctx, "aa"), nil)
		f.wantErr("RevokeToken(unknown)", f.s.RevokeToken(f.ctx, "nope"), metadata.ErrNotFound)
		f.wantErr("RevokeToken(empty)", f.s.RevokeToken(f.ctx, ""), metadata.ErrNotFound)
		if got := strings.Join(ids(), " "); got != "zz aa! mm bb" {
			f.Errorf("after revoke: %q, want zz aa! mm bb", got)
		}
		// A revoked token is still found, so that the gateway can say so; it decides what revoked means.
		got, err := f.s.TokenBySecretHash(f.ctx, sha("aa"))
		if err != nil || !got.Revoked || got.Scope != metadata.ScopeWrite || got.ProjectPath != "paa" {
			f.Errorf("revoked token lookup = %+v, %v", got, err)
		}
		got, err = f.s.TokenBySecretHash(f.ctx, sha("mm"))
		if err != nil || got.Revoked || got.Scope != metadata.ScopeAdmin {
			f.Errorf("other token after revoke = %+v, %v", got, err)
		}
	}},
	{"Expiry", func(f *fx) {
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		never := &metadata.Token{}
		if never.Expired(now) {
			f.Error("a token without ExpiresAt expired")
		}
		t := &metadata.Token{ExpiresAt: now}
		if !t.Expired(now) || t.Expired(now.Add(-time.Millisecond)) {
			f.Error("Expired is wrong at the boundary: a token expires at ExpiresAt")
		}
	}},
}
