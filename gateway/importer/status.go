package importer

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mlgate/mlgate/metadata"
)

// StatusOf lists a project's import journal: every source's entities with what they became. Errors
// are the store's (ErrNotFound for an unknown project).
func StatusOf(ctx context.Context, store metadata.Store, project string) ([]*metadata.ImportRecord, error) {
	p, err := store.Project(ctx, metadata.ProjectRef{Path: project})
	if err != nil {
		return nil, fmt.Errorf("project %q: %w", project, err)
	}
	var out []*metadata.ImportRecord
	page := metadata.Page{Limit: 1000}
	for {
		recs, next, err := store.ListImportRecords(ctx, p.ID, "", "", page)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if next == "" {
			return out, nil
		}
		page.Token = next
	}
}

// PrintStatus writes the mapping table (experiment id → model iid, run id → candidate iid, registered
// model → model, version → seq, logged model) and the progress of histories and files, per source.
func PrintStatus(ctx context.Context, w io.Writer, store metadata.Store, recs []*metadata.ImportRecord) {
	type tally struct{ done, pending, progress int64 }
	var source string
	counts := map[metadata.ImportKind]*tally{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	flush := func() {
		if source == "" {
			return
		}
		for _, k := range []metadata.ImportKind{metadata.ImportMetric, metadata.ImportArtifact} {
			if t := counts[k]; t != nil {
				unit := "points"
				if k == metadata.ImportArtifact {
					unit = "bytes"
				}
				fmt.Fprintf(tw, "  %s\t%d done, %d in progress\t%d %s\n", k+"s", t.done, t.pending, t.progress, unit)
			}
		}
		tw.Flush()
		counts = map[metadata.ImportKind]*tally{}
	}
	for _, r := range recs {
		if r.Source != source {
			flush()
			source = r.Source
			fmt.Fprintf(tw, "source %s\n", source)
		}
		t := counts[r.Kind]
		if t == nil {
			t = &tally{}
			counts[r.Kind] = t
		}
		if r.State == metadata.ImportDone {
			t.done++
		} else {
			t.pending++
		}
		t.progress += r.Progress
		switch r.Kind {
		case metadata.ImportExperiment, metadata.ImportRegisteredModel:
			name := ""
			if m, err := store.Model(ctx, metadata.ModelRef{ID: r.TargetID}); err == nil {
				name = m.Name
			}
			fmt.Fprintf(tw, "  %s %s\t→ model iid %d\t%s\t%s\n", r.Kind, r.SourceID, r.TargetIID, name, r.Note)
		case metadata.ImportRun:
			eid := ""
			if c, err := store.Candidate(ctx, metadata.CandidateRef{ID: r.TargetID}); err == nil {
				eid = c.EID.String()
			}
			fmt.Fprintf(tw, "  run %s\t→ candidate iid %d\trun id %s\t%s\n", r.SourceID, r.TargetIID, eid, r.Note)
		case metadata.ImportModelVersion:
			fmt.Fprintf(tw, "  version %s\t→ seq %d\t\t%s\n", r.SourceID, r.TargetIID, r.Note)
		case metadata.ImportLoggedModel:
			fmt.Fprintf(tw, "  logged model %s\t→ kept\t\t%s\n", r.SourceID, r.Note)
		}
	}
	flush()
	if len(recs) == 0 {
		fmt.Fprintln(w, "nothing imported into this project")
	}
}
