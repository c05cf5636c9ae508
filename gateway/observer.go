package gateway

import (
	"context"
	"time"
)

// Observer learns what the gateway serves, for metrics; cmd implements it over Prometheus, so that the
// gateway does not depend on a metrics library. Its methods run on request goroutines: they must be
// cheap and safe for concurrent use.
type Observer interface {
	// RequestDone is called once per request, when its response has ended (or was abandoned).
	RequestDone(RequestRecord)
	// UploadsInFlight is called with +1 when an upload is admitted and -1 when it ends (see
	// withAdmission for what an upload is).
	UploadsInFlight(delta int)
}

// RequestRecord is one finished request.
type RequestRecord struct {
	Method string
	// Route is the pattern of the route the request matched ("/api/v4/projects/:project/packages/ml_models/*rest"),
	// never its path, so that metrics have a bounded number of series; "unmatched" when none did.
	Route string
	// Status is the status sent, 499 when the client got none (see withAccessLog).
	Status   int
	Duration time.Duration
}

// BlobInUse reports whether a download is reading the blob key, or its deletion waits for one to end,
// so that a sweep of unreferenced blobs leaves it alone.
func (s *Server) BlobInUse(key string) bool { return s.files.BlobInUse(key) }

// RunBlobDeletions deletes the replaced and deleted blobs that a store shared by several replicas has
// queued, until ctx ends (artifact.Service.RunDeletions); with a store of one process it returns at once.
// Its storage is the current one at each deletion.
func (s *Server) RunBlobDeletions(ctx context.Context) { s.files.RunDeletions(ctx) }

// PinStorage holds the current storage generation, so that a config reload does not close its
// backends, until release is called (once). Background work (the sweeper) pins what it works on as a
// request does.
func (s *Server) PinStorage() (release func()) {
	_, release = s.acquireStorage()
	return release
}
