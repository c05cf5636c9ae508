// Package gateway is mlgate's HTTP server: it wires the surfaces (the ml_model package API, MLflow's
// tracking, registry and artifact APIs, the web UI) onto one router, and owns what they all share: the
// middleware (request ids, recovery, access log), authentication, and the storage generations that let
// a config reload swap backends under running transfers. It sees storage only through
// backends.Backend and metadata only through metadata.Store; cmd wires the concrete implementations.
package gateway

import (
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/hf"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow"
	"github.com/mlgate/mlgate/gateway/mlflow/artifactproxy"
	"github.com/mlgate/mlgate/gateway/mlflow/registry"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/oci"
	"github.com/mlgate/mlgate/gateway/packages"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/gateway/ui"
	"github.com/mlgate/mlgate/metadata"
)

// DefaultMaxFileSize is the per-file upload limit unless configured otherwise: 10 GiB, GitLab's.
const DefaultMaxFileSize int64 = 10 << 30

// MaxHeaderBytes bounds a request's header block, the URL and its query included. Go's default is 1 MB,
// which a connection holds while it is parsed; no client of mlgate sends more than a few KB, and the
// query parser stops at 10 000 parameters anyway.
const MaxHeaderBytes = 64 << 10

// Config holds the gateway's settings.
type Config struct {
	// MaxFileSize is the largest file accepted by an upload, in bytes. <= 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// BlobDeletionDelay is, with a store several replicas share, the least time a replaced or deleted blob
	// outlives its row (artifact.Deps.DeletionDelay; <= 0 means artifact.DefaultDeletionDelay).
	BlobDeletionDelay time.Duration
	// Auth requires a token on every route but /health; see withAuth.
	Auth bool
	// JSONBodyBudget bounds the bytes of large JSON request bodies read and decoded at once, across all
	// requests (<= 0: httpapi.DefaultBodyBudget). It must hold the largest body a route accepts.
	JSONBodyBudget int64
	// Metrics, when non-nil, serves GET /metrics (Prometheus exposition). With Auth it needs an instance
	// token (httpapi.AccessInstance): process and plugin figures are not for anonymous callers, nor for
	// one project's token.
	Metrics http.Handler
	// MaxConcurrentUploads bounds the uploads running at once (see withAdmission); one more is answered
	// 429 with Retry-After. <= 0 means no limit.
	MaxConcurrentUploads int
	// BodyReadTimeout is the longest a request body may go without a byte arriving; a stalled body fails
	// with 408 (see withClientBody). <= 0 means no limit.
	BodyReadTimeout time.Duration
	// Space, when not nil, is told of full disks and decides when writes that need space are refused.
	Space SpaceGuard
	// Observer, when not nil, is told of every request and of uploads starting and ending (metrics).
	Observer Observer
	// Signing is the instance's signing secret (multipart upload ids and part URLs). Replicas must share
	// it, and it must outlive restarts: cmd reads it from the configuration or the store. nil draws a
	// random one for this Server alone, which only tests should rely on.
	Signing *signing.Secret
}

// Server is the HTTP front of mlgate.
type Server struct {
	cfg     Config
	store   metadata.Store
	log     *slog.Logger
	handler http.Handler
	storage atomic.Pointer[storageGen] // see SwapStorage

	table     *routeTable
	files     *artifact.Service
	oci       *oci.API // the /v2/ routes; withAuth opens their bearers
	readiness readiness
	routeList []httpapi.RouteInfo // every route of the router, with its declared access
	rpcList   []httpapi.RouteInfo // every MLflow RPC behind the /api/2.0/mlflow/ catch-alls
}

// SingleBackendName is the name New records on files of its one backend.
const SingleBackendName = "default"

// New builds a Server whose files all go to one backend, recorded as SingleBackendName. The gateway
// relies on backends.Checked to hash uploads and validate keys, so it takes only checked backends.
func New(cfg Config, store metadata.Store, backend *backends.CheckedBackend, log *slog.Logger) *Server {
	return NewWithStorage(cfg, store, artifact.SingleStorage(SingleBackendName, backend), log)
}

// NewWithStorage builds a Server that stores files where st routes them. SwapStorage replaces st later
// (on a config reload).
func NewWithStorage(cfg Config, store metadata.Store, st artifact.Storage, log *slog.Logger) *Server {
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: store, log: log}
	s.storage.Store(newStorageGen(st))
	h := s.withAdmission(s.pinStorage(escapedRouting(s.routes())))
	if cfg.Auth {
		h = s.withAuth(h)
	}
	// The access log is outside recovery, so that it logs the 500 a panic becomes.
	s.handler = httpapi.WithRequestID(s.withAccessLog(withRecovery(log, withClientBody(cfg.BodyReadTimeout, h))))
	return s
}

// Handler returns the root handler with middleware applied.
func (s *Server) Handler() http.Handler { return s.handler }

// routes builds every surface from its small dependency struct and registers all routes in one place.
// Package routes end in catch-alls because model names and file paths contain "/", which httprouter
// cannot mix with static segments.
func (s *Server) routes() *httprouter.Router {
	files := artifact.New(artifact.Deps{Store: s.store, Current: s.CurrentStorage, Log: s.log, MaxFileSize: s.cfg.MaxFileSize,
		DeletionDelay: s.cfg.BlobDeletionDelay})
	s.files = files
	pkgs := packages.New(packages.Deps{Store: s.store, Artifacts: files, Log: s.log})
	tracking := mlflow.New(mlflow.Deps{Store: s.store, Artifacts: files, Log: s.log})
	reg := registry.New(registry.Deps{Store: s.store})
	bodies := httpapi.NewBodyBudget(s.cfg.JSONBodyBudget)
	proxy := artifactproxy.New(artifactproxy.Deps{Store: s.store, Artifacts: files, Log: s.log, Budget: bodies, Signing: s.cfg.Signing})
	rpcRoutes := append(tracking.Routes(), reg.Routes()...)
	for _, rt := range rpcRoutes {
		s.rpcList = append(s.rpcList, httpapi.RouteInfo{Method: rt.Method, Pattern: rt.Path, Access: httpapi.AccessToken})
	}
	rpcs := rpc.NewDispatcher(s.store, s.log, bodies, rpcRoutes, mlflow.NotFound)
	web := ui.New(ui.Deps{Store: s.store, Log: s.log, Auth: s.cfg.Auth})
	s.oci = oci.New(oci.Deps{Store: s.store, Artifacts: files, Log: s.log, Signing: s.cfg.Signing})
	hub := hf.New(hf.Deps{Store: s.store, Artifacts: files, Log: s.log})

	r := httprouter.New()
	t := newRouteTable(r, s)
	s.table = t
	defer func() { s.routeList = t.routes }()
	// A PUT must never be answered with a redirect: clients would re-send (or drop) a multi-GB body.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpapi.WriteError(w, req, s.log, httpapi.ErrRouteNotFound)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		httpapi.WriteError(w, req, s.log, httpapi.ErrMethodNotAllowed)
	})

	t.Handle(http.MethodGet, "/health", httpapi.AccessPublic, s.health)
	t.Handle(http.MethodHead, "/health", httpapi.AccessPublic, s.health)
	t.Handle(http.MethodGet, "/ready", httpapi.AccessPublic, s.ready)
	t.Handle(http.MethodHead, "/ready", httpapi.AccessPublic, s.ready)
	if s.cfg.Metrics != nil {
		metrics := s.cfg.Metrics
		t.Handle(http.MethodGet, "/metrics", httpapi.AccessInstance, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
			metrics.ServeHTTP(w, req)
		})
	}

	const models = "/api/v4/projects/:project/packages/ml_models/*rest"
	const generic = "/api/v4/projects/:project/packages/generic/*rest"
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		t.Handle(m, models, httpapi.AccessToken, pkgs.Handler(packages.MLModels))
		t.Handle(m, generic, httpapi.AccessToken, pkgs.Handler(packages.Generic))
	}

	// MLflow tracking and registry RPCs: unprefixed in the default project, and per project in GitLab's layout.
	// Every method reaches the dispatcher, so an unserved one gets MLflow's ENDPOINT_NOT_FOUND body.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		t.Handle(m, "/api/2.0/mlflow/*rpc", httpapi.AccessToken, rpcs.Handler(rpc.DefaultProject))
		t.Handle(m, "/api/v4/projects/:project/ml/mlflow/api/2.0/mlflow/*rpc", httpapi.AccessToken, rpcs.Handler(""))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		// PUTs of multipart parts (…/mpu/part/…) carry their own URL signature instead of a token.
		t.Handle(m, "/api/2.0/mlflow-artifacts/*rest", httpapi.AccessToken, proxy.Handler(rpc.DefaultProject))
		t.Handle(m, "/api/v4/projects/:project/ml/mlflow/api/2.0/mlflow-artifacts/*rest", httpapi.AccessToken, proxy.Handler(""))
	}
	// MLflow 3's tracing and GenAI routes: an MLflow error body saying mlgate does not store traces, so
	// that the client's @mlflow.trace code warns and goes on instead of seeing a non-MLflow body.
	traces := func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		httpapi.WriteMLflowError(w, req, s.log, mlflow.TracesUnsupported(req.Method, req.URL.Path))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, prefix := range []string{"", "/api/v4/projects/:project/ml/mlflow"} {
			t.Handle(m, prefix+"/api/3.0/mlflow/*rpc", httpapi.AccessToken, traces)
			t.Handle(m, prefix+"/v1/traces", httpapi.AccessToken, traces)
			t.Handle(m, prefix+"/version", httpapi.AccessToken, traces)
		}
	}
	// OCI distribution (pull only): repository names have slashes, so one catch-all and the package's
	// own parsing. Every method reaches it, so that a push is answered 405 in the OCI error body. Its
	// token endpoint, /v2/token, is behind the same catch-all and authenticates itself (see withAuth).
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		t.Handle(m, "/v2/*rest", httpapi.AccessToken, s.oci.Handler())
	}
	// The Hugging Face download protocol (read only) under /hf/<project path>/: project paths, repository
	// ids and file paths all have slashes, so one catch-all and the package's own parsing. Every method
	// reaches it, so that an upload is answered 405 in the Hub's error shape.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		t.Handle(m, hf.PathPrefix+"*rest", httpapi.AccessToken, hub.Handler())
	}
	web.Routes(t)
	s.adminRoutes(t)
	return r
}

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
