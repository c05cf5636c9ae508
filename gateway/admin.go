package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/oci"
	"github.com/mlgate/mlgate/metadata"
)

// Admin routes administer the whole server, across projects: token management and hot backups. They
// are declared httpapi.AccessInstance, so with auth they need an instance token.
const (
	adminTokensPath = "/api/v4/admin/tokens"
	adminBackupPath = "/api/v4/admin/backup"
)

// Backup response headers: the size of the copy, sent before it, and its sha256, sent as an HTTP
// trailer after it, so that a client can tell a whole copy from a cut one without the server buffering
// the copy to hash it first.
const (
	BackupSizeHeader   = "X-Mlgate-Backup-Size"
	BackupSHA256Header = "X-Mlgate-Backup-Sha256"
)

func (s *Server) adminRoutes(t *routeTable) {
	t.Handle(http.MethodGet, adminTokensPath, httpapi.AccessInstance, s.loopbackWithoutAuth(s.listTokens))
	t.Handle(http.MethodPost, adminTokensPath, httpapi.AccessInstance, s.loopbackWithoutAuth(s.createToken))
	t.Handle(http.MethodDelete, adminTokensPath+"/:id", httpapi.AccessInstance, s.loopbackWithoutAuth(s.revokeToken))
	if snap, ok := s.store.(metadata.Snapshotter); ok {
		t.Handle(http.MethodGet, adminBackupPath, httpapi.AccessInstance, s.loopbackWithoutAuth(s.backup(snap)))
	} else {
		t.Handle(http.MethodGet, adminBackupPath, httpapi.AccessInstance, s.loopbackWithoutAuth(s.noBackup))
	}
}

// errNoSnapshot is what the backup route answers (501, wrapping httpapi.ErrNotImplemented) when the store
// cannot copy itself (no metadata.Snapshotter): PostgreSQL, whose backups are its own.
var errNoSnapshot = fmt.Errorf("%w: this server's metadata store cannot stream a backup: with PostgreSQL, back up "+
	"the database with PostgreSQL's own tools (pg_dump, or base backups with WAL archiving); see the README, "+
	"\"Running several replicas\"", httpapi.ErrNotImplemented)

// noBackup answers the backup route of a store that cannot copy itself.
func (s *Server) noBackup(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	httpapi.WriteError(w, r, s.log, errNoSnapshot)
}

// tokenKind enforces, with auth on, the kind of token a route's access needs: an instance token on
// AccessInstance routes, a project token on AccessToken routes (an instance token reaches no project).
// Both refusals are 403: the token is valid, it is the wrong kind, and saying so helps the caller.
func (s *Server) tokenKind(access httpapi.Access, next httprouter.Handle) httprouter.Handle {
	switch access {
	case httpapi.AccessInstance:
		return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
			if tok := httpapi.Principal(r.Context()); tok == nil || !tok.Instance {
				id := "-"
				if tok != nil {
					id = tok.ID
				}
				s.writeAuthError(w, r, fmt.Errorf("%w: token %s is a project token; this route administers the server "+
					"and needs an instance token (mlgate token create --instance)", httpapi.ErrPermissionDenied, id))
				return
			}
			next(w, r, ps)
		}
	case httpapi.AccessToken:
		return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
			if tok := httpapi.Principal(r.Context()); tok != nil && tok.Instance {
				s.writeAuthError(w, r, fmt.Errorf("%w: token %s is an instance token: it administers the server and "+
					"reaches no project; use a project token", httpapi.ErrPermissionDenied, tok.ID))
				return
			}
			next(w, r, ps)
		}
	}
	return next
}

func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if oci.IsPath(r.URL.EscapedPath()) {
		oci.WriteError(w, r, s.log, err)
	} else if isMLflowPath(r.URL.EscapedPath()) {
		httpapi.WriteMLflowError(w, r, s.log, err)
	} else {
		httpapi.WriteError(w, r, s.log, err)
	}
}

// loopbackWithoutAuth serves next, without auth, only to loopback peers. Without auth mlgate listens on
// loopback unless --insecure-listen-any says a proxy or firewall protects it; such a setup protects the
// data API, but creating tokens (that a later --auth would honour) and copying every project's metadata
// are for the host's operator, not for every client the proxy lets through. With auth the instance token
// decides.
func (s *Server) loopbackWithoutAuth(next httprouter.Handle) httprouter.Handle {
	if s.cfg.Auth {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			httpapi.WriteError(w, r, s.log, fmt.Errorf("%w: without --auth, admin routes answer only loopback clients; "+
				"run the command on the server's host, or serve with --auth and use an instance token", httpapi.ErrPermissionDenied))
			return
		}
		next(w, r, ps)
	}
}

// TokenJSON is a token as the admin API shows it: never its secret or the secret's hash, except Secret
// in the answer to the request that created it.
type TokenJSON struct {
	ID          string              `json:"id"`
	Name        string              `json:"name,omitempty"`
	Instance    bool                `json:"instance"`
	ProjectPath string              `json:"project_path,omitempty"`
	Scope       metadata.TokenScope `json:"scope"`
	CreatedAt   time.Time           `json:"created_at"`
	ExpiresAt   time.Time           `json:"expires_at,omitzero"`
	Status      string              `json:"status"` // active, revoked or expired
	Secret      string              `json:"secret,omitempty"`
}

// CreateTokenRequest is the body of POST /api/v4/admin/tokens.
type CreateTokenRequest struct {
	Name        string              `json:"name"`
	Instance    bool                `json:"instance"`
	ProjectPath string              `json:"project_path"`
	Scope       metadata.TokenScope `json:"scope"`
	// ExpiresInSeconds is the token's lifetime; 0 or absent: it never expires.
	ExpiresInSeconds int64 `json:"expires_in_seconds"`
}

func tokenJSON(t *metadata.Token, now time.Time) TokenJSON {
	status := "active"
	switch {
	case t.Revoked:
		status = "revoked"
	case t.Expired(now):
		status = "expired"
	}
	return TokenJSON{ID: t.ID, Name: t.Name, Instance: t.Instance, ProjectPath: t.ProjectPath, Scope: t.Scope,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Status: status}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	toks, err := s.store.ListTokens(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	now := time.Now()
	out := make([]TokenJSON, 0, len(toks))
	for _, t := range toks {
		out = append(out, tokenJSON(t, now))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// maxTokenRequest bounds the body of a token creation: a name and a project path.
const maxTokenRequest = 4 << 10

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	body, release, err := httpapi.ReadJSONBody(w, r, httpapi.BodyLimits{MaxBytes: maxTokenRequest}, nil)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	defer release()
	var req CreateTokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		httpapi.WriteError(w, r, s.log, fmt.Errorf("%w: token request: %v", httpapi.ErrBadRequest, err))
		return
	}
	switch {
	case req.Scope == 0:
		err = errors.New("scope is required: read, write or admin")
	case req.Instance && req.ProjectPath != "":
		err = errors.New("an instance token reaches no project: give instance or project_path, not both")
	case !req.Instance && req.ProjectPath == "":
		err = errors.New("project_path is required (or instance: true)")
	case req.ExpiresInSeconds < 0 || req.ExpiresInSeconds > int64((100*365*24*time.Hour)/time.Second):
		err = errors.New("expires_in_seconds must be between 0 (never) and 100 years")
	}
	if err != nil {
		httpapi.WriteError(w, r, s.log, fmt.Errorf("%w: %v", httpapi.ErrBadRequest, err))
		return
	}
	secret, tok, err := auth.IssueToken(r.Context(), s.store, auth.TokenRequest{
		ProjectPath: req.ProjectPath, Instance: req.Instance, Scope: req.Scope, Name: req.Name,
		TTL: time.Duration(req.ExpiresInSeconds) * time.Second,
	})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	by := "-"
	if p := httpapi.Principal(r.Context()); p != nil {
		by = p.ID
	}
	// The id names the token everywhere; its secret is in the answer and nowhere else.
	s.log.Info("token created", "id", tok.ID, "name", tok.Name, "instance", tok.Instance, "project", tok.ProjectPath,
		"scope", tok.Scope.String(), "by", by, "request_id", httpapi.RequestID(r))
	out := tokenJSON(tok, time.Now())
	out.Secret = secret
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, err := httpapi.UnescapeParam(ps.ByName("id"))
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if err := s.store.RevokeToken(r.Context(), id); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			err = httpapi.WithClientMessage(err, "token %q not found", id)
		}
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	by := "-"
	if p := httpapi.Principal(r.Context()); p != nil {
		by = p.ID
	}
	s.log.Info("token revoked", "id", id, "by", by, "request_id", httpapi.RequestID(r))
	w.WriteHeader(http.StatusNoContent)
}

// backup streams a consistent copy of the metadata store (see metadata.Snapshotter): its size in
// BackupSizeHeader before it and its sha256 in the BackupSHA256Header trailer after it. The body is
// chunked, so a copy cut short ends without the trailer's terminating chunk; a copy that fails on the
// server's side ends without the trailer. The copy is never held in memory.
func (s *Server) backup(store metadata.Snapshotter) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		snap, err := store.Snapshot(r.Context())
		if err != nil {
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		defer snap.Close()
		start := time.Now()
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="mlgate.db"`)
		h.Set("Cache-Control", "no-store")
		h.Set(BackupSizeHeader, strconv.FormatInt(snap.Size(), 10))
		h.Set("Trailer", BackupSHA256Header)
		w.WriteHeader(http.StatusOK)
		sum := sha256.New()
		n, err := snap.WriteTo(io.MultiWriter(w, sum))
		if err != nil {
			// Without the trailer the client knows the copy is not whole.
			s.log.Warn("backup not sent whole", "bytes", n, "size", snap.Size(), "err", err, "request_id", httpapi.RequestID(r))
			return
		}
		h.Set(BackupSHA256Header, hex.EncodeToString(sum.Sum(nil)))
		s.log.Info("backup sent", "bytes", n, "ms", time.Since(start).Milliseconds(), "request_id", httpapi.RequestID(r))
	}
}
