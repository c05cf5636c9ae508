package importer

import (
	"context"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/gateway/importer/source"
)

// readOnly reads from the source what an import reads, in the same order and with the same
// parallelism, and discards it: every metric history page and every file's bytes (the plan has
// listed the rest). It is the baseline that import speed is measured against.
func (im *importer) readOnly(ctx context.Context) error {
	var runs []*RunPlan
	var lms []*LoggedModelPlan
	for _, ep := range im.plan.Experiments {
		runs = append(runs, ep.Runs...)
		lms = append(lms, ep.LoggedModels...)
		im.deps.Progress.Entity()
	}
	err := forEach(ctx, im.opts.parallel(), runs, func(ctx context.Context, rp *RunPlan) error {
		for _, key := range metricKeys(rp.Run) {
			var n int64
			err := im.src.MetricHistory(ctx, rp.Run.ID, key, func(page []source.Metric) error {
				n += int64(len(page))
				return nil
			})
			if err != nil {
				im.fail(fmt.Sprintf("run %s metric %q", rp.Run.ID, key), err)
			}
			im.count(false, func(c *Counts) { c.MetricPoints += n })
		}
		im.count(false, func(c *Counts) { c.Runs++ })
		im.deps.Progress.Entity()
		return im.readFiles(ctx, "run "+rp.Run.ID, rp.ArtifactURI, rp.Files)
	})
	if err != nil {
		return err
	}
	return forEach(ctx, im.opts.parallel(), lms, func(ctx context.Context, lp *LoggedModelPlan) error {
		im.deps.Progress.Entity()
		return im.readFiles(ctx, "logged model "+lp.LoggedModel.ID, lp.LoggedModel.ArtifactLocation, lp.Files)
	})
}

func (im *importer) readFiles(ctx context.Context, what, uri string, files []source.FileInfo) error {
	for _, f := range files {
		body, _, err := im.src.OpenArtifact(ctx, uri, f.Path)
		if err != nil {
			im.fail(fmt.Sprintf("%s artifact %q", what, f.Path), err)
			continue
		}
		n, err := io.Copy(io.Discard, &countingReader{r: body, progress: im.deps.Progress})
		body.Close()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			im.fail(fmt.Sprintf("%s artifact %q", what, f.Path), err)
			continue
		}
		im.mu.Lock()
		im.report.Bytes += n
		im.report.Imported.Files++
		im.mu.Unlock()
	}
	return nil
}
