// Package gateway serves mlgate's HTTP API: the ml_model package registry endpoints today, and the MLflow
// REST API and the web UI as they land. It sees storage only through backends.Backend and metadata only
// through metadata.Store; cmd wires the concrete implementations.
package gateway

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

// DefaultMaxFileSize is the per-file upload limit unless configured otherwise: 10 GiB, GitLab's.
const DefaultMaxFileSize int64 = 10 << 30

// Config holds the gateway's settings.
type Config struct {
	// MaxFileSize is the largest file accepted by an upload, in bytes. <= 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Auth requires a token on every route but /health; see withAuth.
	Auth bool
	// Metrics, when non-nil, serves GET /metrics (Prometheus exposition). It is behind auth like every
	// other route when Auth is on: process and plugin figures are not for anonymous callers.
	Metrics http.Handler
}

// Server is the HTTP front of mlgate.
type Server struct {
	cfg       Config
	store     metadata.Store
	artifacts *artifactService
	log       *slog.Logger
	handler   http.Handler
	storage   atomic.Pointer[storageGen] // see SwapStorage
	// runLocks serialize read-modify-write updates of one run's data (log-model's history tag).
	// Striped by candidate id; one process owns the store (bbolt's lock), so this is enough.
	runLocks [64]sync.Mutex
}

// lockRun locks the read-modify-write updates of candidate id until the returned func is called.
func (s *Server) lockRun(id uint64) (unlock func()) {
	mu := &s.runLocks[id%uint64(len(s.runLocks))]
	mu.Lock()
	return mu.Unlock
}

// SingleBackendName is the name New records on files of its one backend.
const SingleBackendName = "default"

// New builds a Server whose files all go to one backend, recorded as SingleBackendName. backend must
// already be wrapped with backends.Checked: the gateway relies on it to hash uploads and validate keys.
func New(cfg Config, store metadata.Store, backend backends.Backend, log *slog.Logger) *Server {
	return NewWithStorage(cfg, store, SingleStorage(SingleBackendName, backend), log)
}

// NewWithStorage builds a Server that stores files where st routes them. Every backend of st must be
// wrapped with backends.Checked. SwapStorage replaces st later (on a config reload).
func NewWithStorage(cfg Config, store metadata.Store, st Storage, log *slog.Logger) *Server {
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		store: store,
		log:   log,
	}
	s.storage.Store(newStorageGen(st))
	s.artifacts = &artifactService{store: store, current: s.CurrentStorage, log: log}
	h := s.pinStorage(escapedRouting(s.routes()))
	if cfg.Auth {
		h = s.withAuth(h)
	}
	s.handler = withRequestID(withRecovery(log, withAccessLog(log, h)))
	return s
}

// Handler returns the root handler with middleware applied.
func (s *Server) Handler() http.Handler { return s.handler }

// routes registers every route in one place. Package routes end in catch-alls because model names and
// file paths contain "/", which httprouter cannot mix with static segments.
func (s *Server) routes() *httprouter.Router {
	r := httprouter.New()
	// A PUT must never be answered with a redirect: clients would re-send (or drop) a multi-GB body.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, ErrRouteNotFound)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, s.log, ErrMethodNotAllowed)
	})

	r.GET("/health", s.health)
	r.HEAD("/health", s.health)
	if s.cfg.Metrics != nil {
		r.Handler(http.MethodGet, "/metrics", s.cfg.Metrics)
	}

	const models = "/api/v4/projects/:project/packages/ml_models/*rest"
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		r.Handle(m, models, s.packageFile(routeMLModels))
	}
	const generic = "/api/v4/projects/:project/packages/generic/*rest"
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		r.Handle(m, generic, s.packageFile(routeGeneric))
	}

	// MLflow tracking and registry RPCs: unprefixed in the default project, and per project in GitLab's layout.
	// Every method reaches the dispatcher, so an unserved one gets MLflow's ENDPOINT_NOT_FOUND body.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		r.Handle(m, "/api/2.0/mlflow/*rpc", s.mlflowDispatch(DefaultMLflowProject))
		r.Handle(m, "/api/v4/projects/:project/ml/mlflow/api/2.0/mlflow/*rpc", s.mlflowDispatch(""))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		r.Handle(m, "/api/2.0/mlflow-artifacts/*rest", s.mlflowArtifacts(DefaultMLflowProject))
		r.Handle(m, "/api/v4/projects/:project/ml/mlflow/api/2.0/mlflow-artifacts/*rest", s.mlflowArtifacts(""))
	}
	s.uiRoutes(r)
	return r
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
