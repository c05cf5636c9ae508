package gateway_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// authEnv is a gateway with auth on and helpers that send a token.
type authEnv struct {
	*gatewaytest.Env
}

func newAuthEnv(t *testing.T) *authEnv {
	return &authEnv{gatewaytest.New(t, gateway.Config{Auth: true})}
}

// token issues a token through the same path the CLI uses.
func (e *authEnv) token(project string, scope metadata.TokenScope) (string, *metadata.Token) {
	e.T.Helper()
	secret, tok, err := auth.IssueToken(e.T.Context(), e.Store, auth.TokenRequest{ProjectPath: project, Scope: scope, Name: "test"})
	if err != nil {
		e.T.Fatalf("IssueToken: %v", err)
	}
	return secret, tok
}

// instanceToken issues an instance token through the same path the CLI uses.
func (e *authEnv) instanceToken(scope metadata.TokenScope) (string, *metadata.Token) {
	e.T.Helper()
	secret, tok, err := auth.IssueToken(e.T.Context(), e.Store, auth.TokenRequest{Instance: true, Scope: scope, Name: "ops"})
	if err != nil {
		e.T.Fatalf("IssueToken: %v", err)
	}
	return secret, tok
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

func basic(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func (e *authEnv) putAs(url string, data []byte, h map[string]string) gatewaytest.Response {
	e.T.Helper()
	return e.Do(http.MethodPut, url, bytes.NewReader(data), h)
}

func (e *authEnv) getAs(url string, h map[string]string) gatewaytest.Response {
	e.T.Helper()
	return e.Do(http.MethodGet, url, nil, h)
}

func (e *authEnv) mlflowPostAs(base, rpc, body string, h map[string]string) gatewaytest.Response {
	e.T.Helper()
	hh := map[string]string{"Content-Type": "application/json"}
	for k, v := range h {
		hh[k] = v
	}
	return e.Do(http.MethodPost, base+"/api/2.0/mlflow/"+rpc, strings.NewReader(body), hh)
}

func (e *authEnv) mlflowPrefix(project string) string {
	return e.Srv.URL + "/api/v4/projects/" + url.PathEscape(project) + "/ml/mlflow"
}

func wantUnauthenticated(t *testing.T, r gatewaytest.Response, mlflow bool) {
	t.Helper()
	gatewaytest.WantStatus(t, r, http.StatusUnauthorized)
	if got := r.Header.Get("WWW-Authenticate"); got != `Basic realm="mlgate"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
	if mlflow {
		if code := r.MLflowError(t); code != "UNAUTHENTICATED" {
			t.Errorf("error_code %q, want UNAUTHENTICATED", code)
		}
	} else if code := r.ErrorCode(t); code != "unauthenticated" {
		t.Errorf("error %q, want unauthenticated", code)
	}
}

func TestAuthAcceptsEveryHeaderForm(t *testing.T) {
	env := newAuthEnv(t)
	secret, _ := env.token("team/vision", metadata.ScopeWrite)
	forms := map[string]map[string]string{
		"bearer":                 bearer(secret),
		"bearer, lowercase":      {"Authorization": "bearer " + secret},
		"basic, any user":        basic("anyone", secret),
		"basic, token as user":   basic(secret, ""),
		"private-token":          {"PRIVATE-TOKEN": secret},
		"bearer beats PRIVATE-T": {"Authorization": "Bearer " + secret, "PRIVATE-TOKEN": "wrong"},
	}
	i := 0
	for name, h := range forms {
		i++
		path := "m/1.0.0/files/f" + string(rune('a'+i))
		r := env.putAs(env.PkgURL(path), []byte(name), h)
		if r.Status != http.StatusCreated {
			t.Errorf("%s: package PUT %d: %s", name, r.Status, r.Body)
			continue
		}
		if r := env.getAs(env.PkgURL(path), h); r.Status != http.StatusOK || string(r.Body) != name {
			t.Errorf("%s: package GET %d %q", name, r.Status, r.Body)
		}
		r = env.mlflowPostAs(env.mlflowPrefix("team/vision"), "experiments/create", `{"name":"exp `+name+`"}`, h)
		if r.Status != http.StatusOK {
			t.Errorf("%s: MLflow experiments/create %d: %s", name, r.Status, r.Body)
		}
	}
}

func TestAuthRejectsMissingAndBadCredentials(t *testing.T) {
	env := newAuthEnv(t)
	secret, tok := env.token("team/vision", metadata.ScopeWrite)
	gatewaytest.WantStatus(t, env.putAs(env.PkgURL("m/1.0.0/files/a"), []byte("a"), bearer(secret)), http.StatusCreated)

	// /health stays public.
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/health"), http.StatusOK)

	for name, h := range map[string]map[string]string{
		"none":                 nil,
		"unknown token":        bearer("mlg_not-a-real-token"),
		"token with a typo":    bearer(secret + "x"),
		"empty bearer":         {"Authorization": "Bearer "},
		"unsupported scheme":   {"Authorization": "Token " + secret},
		"malformed basic":      {"Authorization": "Basic !!!"},
		"empty basic":          basic("", ""),
		"wrong basic password": basic(secret, "nope"),
		"empty PRIVATE-TOKEN":  {"PRIVATE-TOKEN": " "},
	} {
		t.Run(name, func(t *testing.T) {
			wantUnauthenticated(t, env.getAs(env.PkgURL("m/1.0.0/files/a"), h), false)
			wantUnauthenticated(t, env.putAs(env.PkgURL("m/1.0.0/files/b"), []byte("b"), h), false)
			wantUnauthenticated(t, env.getAs(env.Srv.URL+"/api/2.0/mlflow/experiments/get?experiment_id=0", h), true)
			wantUnauthenticated(t, env.mlflowPostAs(env.mlflowPrefix("team/vision"), "experiments/create", `{"name":"x"}`, h), true)
			wantUnauthenticated(t, env.getAs(env.Srv.URL+"/api/2.0/mlflow-artifacts/artifacts?path=1", h), true)
			// Even a route that does not exist says nothing before authentication.
			wantUnauthenticated(t, env.getAs(env.Srv.URL+"/api/v4/nothing-here", h), false)
		})
	}
	if _, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: "default"}); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("unauthenticated requests created the default project: %v", err)
	}
	if _, err := env.Store.File(t.Context(), 1, "b"); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("an unauthenticated PUT stored a file: %v", err)
	}
	_ = tok
}

func TestAuthRevokedAndExpiredTokensAre401(t *testing.T) {
	env := newAuthEnv(t)
	secret, tok := env.token("team/vision", metadata.ScopeWrite)
	gatewaytest.WantStatus(t, env.putAs(env.PkgURL("m/1.0.0/files/a"), []byte("a"), bearer(secret)), http.StatusCreated)
	if err := env.Store.RevokeToken(t.Context(), tok.ID); err != nil {
		t.Fatal(err)
	}
	r := env.getAs(env.PkgURL("m/1.0.0/files/a"), bearer(secret))
	wantUnauthenticated(t, r, false)
	if !strings.Contains(string(r.Body), "revoked") {
		t.Errorf("revoked token message: %s", r.Body)
	}
	wantUnauthenticated(t, env.mlflowPostAs(env.mlflowPrefix("team/vision"), "experiments/create", `{"name":"x"}`, bearer(secret)), true)

	expired := &metadata.Token{ID: "expired1", ProjectPath: "team/vision", Scope: metadata.ScopeAdmin,
		SecretHash: auth.HashSecret("mlg_expired"), ExpiresAt: time.Now().Add(-time.Minute)}
	if err := env.Store.CreateToken(t.Context(), expired); err != nil {
		t.Fatal(err)
	}
	r = env.getAs(env.PkgURL("m/1.0.0/files/a"), map[string]string{"PRIVATE-TOKEN": "mlg_expired"})
	wantUnauthenticated(t, r, false)
	if !strings.Contains(string(r.Body), "expired") {
		t.Errorf("expired token message: %s", r.Body)
	}
	wantUnauthenticated(t, env.getAs(env.mlflowPrefix("team/vision")+"/api/2.0/mlflow/experiments/get?experiment_id=0",
		basic("u", "mlg_expired")), true)

	// A token that has not expired yet works.
	future := &metadata.Token{ID: "future1", ProjectPath: "team/vision", Scope: metadata.ScopeRead,
		SecretHash: auth.HashSecret("mlg_future"), ExpiresAt: time.Now().Add(time.Hour)}
	if err := env.Store.CreateToken(t.Context(), future); err != nil {
		t.Fatal(err)
	}
	gatewaytest.WantStatus(t, env.getAs(env.PkgURL("m/1.0.0/files/a"), bearer("mlg_future")), http.StatusOK)
}

func TestAuthReadScopeCannotWrite(t *testing.T) {
	env := newAuthEnv(t)
	write, _ := env.token("team/vision", metadata.ScopeWrite)
	read, _ := env.token("team/vision", metadata.ScopeRead)
	gatewaytest.WantStatus(t, env.putAs(env.PkgURL("m/1.0.0/files/a"), []byte("a"), bearer(write)), http.StatusCreated)
	prefix := env.mlflowPrefix("team/vision")
	gatewaytest.WantStatus(t, env.mlflowPostAs(prefix, "experiments/create", `{"name":"churn"}`, bearer(write)), http.StatusOK)

	// Reads work.
	if r := env.getAs(env.PkgURL("m/1.0.0/files/a"), bearer(read)); r.Status != http.StatusOK || string(r.Body) != "a" {
		t.Fatalf("read token GET: %d %s", r.Status, r.Body)
	}
	gatewaytest.WantStatus(t, env.Do(http.MethodHead, env.PkgURL("m/1.0.0/files/a"), nil, bearer(read)), http.StatusOK)
	gatewaytest.WantStatus(t, env.getAs(env.PkgURL("m/1.0.0/files"), bearer(read)), http.StatusOK)
	gatewaytest.WantStatus(t, env.getAs(prefix+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn", bearer(read)), http.StatusOK)

	// Writes are 403, on both route families, and change nothing.
	r := env.putAs(env.PkgURL("m/1.0.0/files/b"), []byte("b"), bearer(read))
	gatewaytest.WantStatus(t, r, http.StatusForbidden)
	if code := r.ErrorCode(t); code != "permission_denied" {
		t.Errorf("error %q", code)
	}
	gatewaytest.WantStatus(t, env.Do(http.MethodDelete, env.PkgURL("m/1.0.0/files/a"), nil, bearer(read)), http.StatusForbidden)
	r = env.mlflowPostAs(prefix, "experiments/create", `{"name":"other"}`, basic("u", read))
	gatewaytest.WantStatus(t, r, http.StatusForbidden)
	if code := r.MLflowError(t); code != "PERMISSION_DENIED" {
		t.Errorf("error_code %q", code)
	}
	r = env.Do(http.MethodPut, env.Srv.URL+"/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/f", strings.NewReader("x"),
		map[string]string{"PRIVATE-TOKEN": read})
	gatewaytest.WantStatus(t, r, http.StatusForbidden)
	r.MLflowError(t)
	if r := env.getAs(env.PkgURL("m/1.0.0/files/a"), bearer(read)); r.Status != http.StatusOK {
		t.Errorf("the refused DELETE deleted: %d", r.Status)
	}
	if r := env.getAs(prefix+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=other", bearer(write)); r.Status != http.StatusNotFound {
		t.Errorf("the refused create created: %d %s", r.Status, r.Body)
	}

	// MLflow's read-only POSTs (search) are reads: whatever they answer, it is not a permission error.
	for _, rpc := range []string{"runs/search", "experiments/search", "registered-models/get-latest-versions"} {
		r := env.mlflowPostAs(prefix, rpc, `{}`, bearer(read))
		if r.Status == http.StatusForbidden || r.Status == http.StatusUnauthorized {
			t.Errorf("read token on POST %s: %d %s", rpc, r.Status, r.Body)
		}
	}
}

func TestAuthOtherProjectIsNotFound(t *testing.T) {
	env := newAuthEnv(t)
	mine, _ := env.token("team/vision", metadata.ScopeAdmin)
	theirs, _ := env.token("other/secret", metadata.ScopeWrite)
	otherURL := env.Srv.URL + "/api/v4/projects/other%2Fsecret/packages/ml_models/m/1.0.0/files/a"
	gatewaytest.WantStatus(t, env.putAs(otherURL, []byte("a"), bearer(theirs)), http.StatusCreated)
	gatewaytest.WantStatus(t, env.putAs(env.PkgURL("m/1.0.0/files/a"), []byte("a"), bearer(mine)), http.StatusCreated)
	other, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: "other/secret"})
	if err != nil {
		t.Fatal(err)
	}

	// An existing project of someone else answers exactly like a missing one.
	existing := env.getAs(otherURL, bearer(mine))
	missing := env.getAs(env.Srv.URL+"/api/v4/projects/no%2Fsuch/packages/ml_models/m/1.0.0/files/a", bearer(mine))
	gatewaytest.WantStatus(t, existing, http.StatusNotFound)
	gatewaytest.WantStatus(t, missing, http.StatusNotFound)
	if existing.ErrorCode(t) != "not_found" || strings.Contains(string(existing.Body), "other/secret") != strings.Contains(string(missing.Body), "no/such") {
		t.Errorf("bodies differ in kind: %s vs %s", existing.Body, missing.Body)
	}
	byID := env.getAs(env.Srv.URL+"/api/v4/projects/"+itoa(other.ID)+"/packages/ml_models/m/1.0.0/files/a", bearer(mine))
	byMissingID := env.getAs(env.Srv.URL+"/api/v4/projects/999/packages/ml_models/m/1.0.0/files/a", bearer(mine))
	gatewaytest.WantStatus(t, byID, http.StatusNotFound)
	gatewaytest.WantStatus(t, byMissingID, http.StatusNotFound)
	if strings.Replace(string(byID.Body), itoa(other.ID), "999", 1) != string(byMissingID.Body) {
		t.Errorf("a numeric id of another project is told apart from a missing one: %s vs %s", byID.Body, byMissingID.Body)
	}
	// My own project by numeric id works.
	gatewaytest.WantStatus(t, env.getAs(env.Srv.URL+"/api/v4/projects/1/packages/ml_models/m/1.0.0/files/a", bearer(theirs)), http.StatusOK)

	// A write to another project is 404 too, and creates nothing.
	gatewaytest.WantStatus(t, env.putAs(env.Srv.URL+"/api/v4/projects/new%2Fproject/packages/ml_models/m/1.0.0/files/a", []byte("a"), bearer(mine)),
		http.StatusNotFound)
	if _, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: "new/project"}); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("a write with another project's token created the project: %v", err)
	}

	// MLflow: per-project prefix and the unprefixed routes (project "default").
	r := env.mlflowPostAs(env.mlflowPrefix("other/secret"), "experiments/create", `{"name":"x"}`, bearer(mine))
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	if code := r.MLflowError(t); code != "RESOURCE_DOES_NOT_EXIST" {
		t.Errorf("error_code %q", code)
	}
	r = env.mlflowPostAs(env.Srv.URL, "experiments/create", `{"name":"x"}`, bearer(mine))
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	r.MLflowError(t)
	if _, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: rpc.DefaultProject}); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("the default project was created for another project's token: %v", err)
	}
	def, _ := env.token(rpc.DefaultProject, metadata.ScopeWrite)
	gatewaytest.WantStatus(t, env.mlflowPostAs(env.Srv.URL, "experiments/create", `{"name":"x"}`, bearer(def)), http.StatusOK)
}

func TestAuthTokenProjectIsCreatedOnFirstWriteOnly(t *testing.T) {
	env := newAuthEnv(t)
	read, _ := env.token(rpc.DefaultProject, metadata.ScopeRead)
	// The unprefixed routes may create "default" on any request, but never for a read token.
	gatewaytest.WantStatus(t, env.getAs(env.Srv.URL+"/api/2.0/mlflow/experiments/get?experiment_id=0", bearer(read)), http.StatusNotFound)
	if _, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: rpc.DefaultProject}); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("a read token created its project: %v", err)
	}
	write, _ := env.token("brand/new", metadata.ScopeWrite)
	gatewaytest.WantStatus(t, env.putAs(env.Srv.URL+"/api/v4/projects/brand%2Fnew/packages/ml_models/m/1.0.0/files/a", []byte("a"), bearer(write)),
		http.StatusCreated)
	if _, err := env.Store.Project(t.Context(), metadata.ProjectRef{Path: "brand/new"}); err != nil {
		t.Errorf("the first write did not create the token's project: %v", err)
	}
}

func TestAuthSignedPartUploadsNeedNoCredentials(t *testing.T) {
	env := newAuthEnv(t)
	for _, u := range []string{
		env.Srv.URL + "/api/2.0/mlflow-artifacts/mpu/part/abc/1?exp=1&sig=x",
		env.mlflowPrefix("team/vision") + "/api/2.0/mlflow-artifacts/mpu/part/abc/1?exp=1&sig=x",
	} {
		// Auth lets it through; the part handler, not the token, decides (it checks the signature).
		if r := env.Do(http.MethodPut, u, strings.NewReader("part"), nil); r.Status == http.StatusUnauthorized {
			t.Errorf("PUT %s: 401 %s", u, r.Body)
		}
		// Only PUT, and a bad token sent anyway is still refused.
		wantUnauthenticated(t, env.Do(http.MethodGet, u, nil, nil), true)
		wantUnauthenticated(t, env.Do(http.MethodPut, u, strings.NewReader("part"), bearer("mlg_wrong")), true)
	}
	// The exemption is for that path only.
	wantUnauthenticated(t, env.Do(http.MethodPut, env.Srv.URL+"/api/2.0/mlflow-artifacts/artifacts/mpu/part/1", strings.NewReader("x"), nil), true)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
