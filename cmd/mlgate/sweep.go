package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/mlgate/mlgate/gateway"
)

// runSweeper removes garbage every cfg.SweepInterval until ctx ends (not at all when the interval is
// 0): unreferenced blobs and staging leftovers older than cfg.SweepGrace, multipart uploads without a
// new part for cfg.SweepMultipartGrace, never a blob a download still reads (gw.BlobInUse). Each sweep
// pins the gateway's current storage generation and holds the backend set, so that a config reload
// closes nothing under it. It logs what it removed (maintenance.Sweep) and counts it in metrics.
//
// The defaults: a blob is stored seconds to minutes (hashing a 10 GiB S3 multipart upload) before its
// row commits, and a staging file's modification time moves while its upload sends data, so an hour
// spares every upload in flight with a wide margin and still frees a crash's leftovers the same day;
// a multipart client may pause between parts (a retry loop, a laptop asleep), so its uploads get a
// day, the period S3 lifecycle rules commonly give AbortIncompleteMultipartUpload. Every five
// minutes costs one listing of each backend and one read of the file rows.
func runSweeper(ctx context.Context, cfg *config, st *storage, gw *gateway.Server, metrics *serveMetrics, log *slog.Logger) {
	if cfg.SweepInterval <= 0 {
		return
	}
	tick := time.NewTicker(cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sweepOnce(ctx, cfg, st, gw, metrics, log)
	}
}

// sweepOnce runs one sweep over the current backends.
func sweepOnce(ctx context.Context, cfg *config, st *storage, gw *gateway.Server, metrics *serveMetrics, log *slog.Logger) {
	unpin := gw.PinStorage()
	defer unpin()
	st.mu.Lock()
	ms, release := st.set.retain(st.store)
	st.mu.Unlock()
	defer release()
	start := time.Now()
	removed, err := maintenance.Sweep(ctx, ms, maintenance.SweepOptions{
		Grace:          cfg.SweepGrace,
		MultipartGrace: cfg.SweepMultipartGrace,
		Spare:          maintenance.SpareShared(ctx, st.store, gw.BlobInUse),
		Log:            log,
	})
	metrics.removed(removed)
	if err != nil && ctx.Err() == nil {
		log.Warn("sweep failed; the next one tries again", "err", err, "removed", len(removed))
		return
	}
	if len(removed) > 0 {
		log.Info("sweep done", "removed", len(removed), "took", time.Since(start).Round(time.Millisecond))
	}
}
