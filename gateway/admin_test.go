package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// The admin token API creates, lists and revokes tokens on a running server: the secret is in the
// creation's answer only, the new token works at once and stops working once revoked.
func TestAdminTokenAPI(t *testing.T) {
	e := &authEnv{gatewaytest.New(t, gateway.Config{Auth: true})}
	admin, adminTok := e.instanceToken(metadata.ScopeAdmin)
	as := bearer(admin)
	hdr := map[string]string{"Content-Type": "application/json", "Authorization": as["Authorization"]}
	tokens := e.Srv.URL + "/api/v4/admin/tokens"

	r := e.Do(http.MethodPost, tokens, strings.NewReader(`{"project_path":"team/vision","scope":"write","name":"ci","expires_in_seconds":3600}`), hdr)
	gatewaytest.WantStatus(t, r, http.StatusCreated)
	var created gateway.TokenJSON
	r.JSON(t, &created)
	if !strings.HasPrefix(created.Secret, "mlg_") || created.ProjectPath != "team/vision" || created.Scope != metadata.ScopeWrite ||
		created.Instance || created.Status != "active" || created.ExpiresAt.Sub(created.CreatedAt).Seconds() != 3600 {
		t.Fatalf("created %+v", created)
	}
	if strings.Contains(string(r.Body), "secret_hash") {
		t.Errorf("the answer shows the secret's hash: %s", r.Body)
	}
	// The new token works at once on its project.
	gatewaytest.WantStatus(t, e.putAs(e.PkgURL("m/1.0.0/files/a.txt"), []byte("a"), bearer(created.Secret)), http.StatusCreated)

	r = e.Do(http.MethodPost, tokens, strings.NewReader(`{"instance":true,"scope":"read","name":"prometheus"}`), hdr)
	gatewaytest.WantStatus(t, r, http.StatusCreated)
	var scraper gateway.TokenJSON
	r.JSON(t, &scraper)
	if !scraper.Instance || scraper.ProjectPath != "" {
		t.Fatalf("instance token %+v", scraper)
	}

	r = e.getAs(tokens, as)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), created.Secret) || strings.Contains(string(r.Body), "secret") {
		t.Errorf("the listing shows secrets: %s", r.Body)
	}
	var list []gateway.TokenJSON
	r.JSON(t, &list)
	ids := map[string]gateway.TokenJSON{}
	for _, tok := range list {
		ids[tok.ID] = tok
	}
	if len(list) != 3 || ids[created.ID].Name != "ci" || !ids[scraper.ID].Instance || !ids[adminTok.ID].Instance {
		t.Fatalf("listing %s", r.Body)
	}

	// A read instance token lists but does not create or revoke.
	gatewaytest.WantStatus(t, e.getAs(tokens, bearer(scraper.Secret)), http.StatusOK)
	gatewaytest.WantStatus(t, e.Do(http.MethodDelete, tokens+"/"+created.ID, nil, bearer(scraper.Secret)), http.StatusForbidden)

	gatewaytest.WantStatus(t, e.Do(http.MethodDelete, tokens+"/"+created.ID, nil, as), http.StatusNoContent)
	gatewaytest.WantStatus(t, e.Do(http.MethodDelete, tokens+"/"+created.ID, nil, as), http.StatusNoContent) // again: no-op
	r = e.Do(http.MethodDelete, tokens+"/nosuchtoken", nil, as)
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	if !strings.Contains(string(r.Body), `token \"nosuchtoken\" not found`) {
		t.Errorf("unknown token: %s", r.Body)
	}
	wantUnauthenticated(t, e.putAs(e.PkgURL("m/1.0.0/files/b.txt"), []byte("b"), bearer(created.Secret)), false)
	r = e.getAs(tokens, as)
	list = nil
	r.JSON(t, &list)
	for _, tok := range list {
		if tok.ID == created.ID && tok.Status != "revoked" {
			t.Errorf("revoked token listed as %q", tok.Status)
		}
	}

	for _, bad := range []string{
		`{"scope":"read"}`, // neither a project nor instance
		`{"instance":true,"project_path":"p","scope":"read"}`,
		`{"project_path":"p"}`,
		`{"project_path":"p","scope":"root"}`,
		`{"project_path":"a//b","scope":"read"}`,
		`{"project_path":"p","scope":"read","expires_in_seconds":-1}`,
		`{"project_path":"p","scope":"read","expires_in_seconds":99999999999999}`,
		`not json`,
		`{"project_path":"p","scope":"read","name":"` + strings.Repeat("n", 300) + `"}`,
	} {
		r := e.Do(http.MethodPost, tokens, strings.NewReader(bad), hdr)
		if r.Status != http.StatusBadRequest {
			t.Errorf("POST %s: %d, want 400: %s", bad, r.Status, r.Body)
		}
	}
	r = e.Do(http.MethodPost, tokens, strings.NewReader(`{"project_path":"p","scope":"read","name":"`+strings.Repeat("n", 5000)+`"}`), hdr)
	gatewaytest.WantStatus(t, r, http.StatusRequestEntityTooLarge)
}

// Without auth, backups and token management answer loopback clients only; /metrics answers everyone,
// as before.
func TestAdminRoutesWithoutAuthAreLoopbackOnly(t *testing.T) {
	e := gatewaytest.New(t, gateway.Config{Metrics: metricsStub})
	gatewaytest.WantStatus(t, e.Get(e.Srv.URL+"/api/v4/admin/tokens"), http.StatusOK) // httptest listens on loopback
	for _, target := range []string{"/api/v4/admin/tokens", "/api/v4/admin/backup", "/metrics"} {
		for _, peer := range []string{"192.0.2.7:40000", "[2001:db8::1]:40000", "127.0.0.1:40000", "[::1]:40000"} {
			req := httptest.NewRequest(http.MethodGet, target, nil)
			req.RemoteAddr = peer
			rec := httptest.NewRecorder()
			e.Gateway.Handler().ServeHTTP(rec, req)
			remote := !strings.HasPrefix(peer, "127.") && !strings.HasPrefix(peer, "[::1]")
			want := http.StatusOK
			if remote && target != "/metrics" {
				want = http.StatusForbidden
			}
			if rec.Code != want {
				t.Errorf("GET %s from %s: %d, want %d: %s", target, peer, rec.Code, want, rec.Body)
			}
		}
	}
}

// A backup streams the whole store with its size before it and its sha256 after it; the copy is a
// store CheckBackup accepts, with what was committed before it began.
func TestAdminBackup(t *testing.T) {
	e := &authEnv{gatewaytest.New(t, gateway.Config{Auth: true})}
	w, _ := e.token("team/vision", metadata.ScopeWrite)
	gatewaytest.WantStatus(t, e.putAs(e.PkgURL("m/1.0.0/files/a.txt"), []byte("hello"), bearer(w)), http.StatusCreated)
	inst, _ := e.instanceToken(metadata.ScopeRead)

	req, err := http.NewRequest(http.MethodGet, e.Srv.URL+"/api/v4/admin/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+inst)
	resp, err := e.Srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %d", resp.StatusCode)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), resp.Body)
	if err != nil || f.Close() != nil {
		t.Fatal(err)
	}
	if size, _ := strconv.ParseInt(resp.Header.Get(gateway.BackupSizeHeader), 10, 64); size != n || n == 0 {
		t.Errorf("received %d bytes, %s says %d", n, gateway.BackupSizeHeader, size)
	}
	if got := resp.Trailer.Get(gateway.BackupSHA256Header); got != hex.EncodeToString(sum.Sum(nil)) {
		t.Errorf("trailer sha256 %q, received %x", got, sum.Sum(nil))
	}
	if _, err := boltstore.CheckBackup(t.Context(), path, true); err != nil {
		t.Fatal(err)
	}
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Project(t.Context(), metadata.ProjectRef{Path: "team/vision"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Path != "team/vision" {
		t.Errorf("restored project %+v", p)
	}
}
