package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// What `mlgate import` needs of a store: identifiers and times taken from the source instead of drawn
// (presets), and a journal of what each source entity became, written in the same transaction.

// Times the source had, in the past and at millisecond precision as MLflow gives them; one in another zone,
// since only the instant is kept.
var (
	srcCreated = time.Date(2021, 3, 4, 5, 6, 7, 8e6, time.UTC)
	srcUpdated = time.Date(2022, 6, 7, 8, 9, 10, 11e6, time.FixedZone("UTC+2", 2*3600))
)

func eid(b byte) metadata.EID   { return metadata.EID{0: 0xe1, 15: b} }
func lmid(b byte) metadata.LMID { return metadata.LMID{0: 0x1d, 15: b} }

var importTests = []test{
	{"PresetModelIID", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := &metadata.Model{Project: p.ID, DisplayName: "Churn", IID: 5, CreatedAt: srcCreated, UpdatedAt: srcUpdated}
		f.wantErr("CreateModel(iid 5)", f.s.CreateModel(f.ctx, m), nil)
		if m.IID != 5 || !m.CreatedAt.Equal(srcCreated) || !m.UpdatedAt.Equal(srcUpdated) {
			f.Errorf("created %+v: want iid 5 and the source's times", m)
		}
		got, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, IID: 5})
		if err != nil || got.ID != m.ID || !got.CreatedAt.Equal(srcCreated) || !got.UpdatedAt.Equal(srcUpdated) {
			f.Errorf("Model(iid 5) = %+v, %v", got, err)
		}
		taken := &metadata.Model{Project: p.ID, Name: "other", IID: 5}
		f.wantErr("a taken iid", f.s.CreateModel(f.ctx, taken), metadata.ErrExists)
		if taken.ID != 0 || taken.IID != 5 {
			f.Errorf("a refused create changed the model: %+v", taken)
		}
		_, err = f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "other"})
		f.wantErr("the refused model's name", err, metadata.ErrNotFound)
		// The counter moved past the preset iid; a free iid below it may still be requested.
		if next := f.model(p.ID, "next", ""); next.IID != 6 || next.CreatedAt.IsZero() || next.CreatedAt.Equal(srcCreated) {
			f.Errorf("next model without a preset: iid %d created %v, want 6 and now", next.IID, next.CreatedAt)
		}
		low := &metadata.Model{Project: p.ID, Name: "low", IID: 2}
		f.wantErr("a free iid below the counter", f.s.CreateModel(f.ctx, low), nil)
		if low.IID != 2 {
			f.Errorf("low iid %d, want 2", low.IID)
		}
		if after := f.model(p.ID, "after", ""); after.IID != 7 {
			f.Errorf("iid after a low preset %d, want 7", after.IID)
		}
		// Iids are per project.
		if other := (&metadata.Model{Project: q.ID, Name: "churn", IID: 5}); f.s.CreateModel(f.ctx, other) != nil || other.IID != 5 {
			f.Errorf("iid 5 in another project: %+v", other)
		}
		// A purged model's iid is free for a request, never for the counter.
		purged := &metadata.Model{Project: p.ID, Name: "purged", IID: 40}
		f.wantErr("CreateModel(iid 40)", f.s.CreateModel(f.ctx, purged), nil)
		f.wantErr("PurgeModel", f.s.PurgeModel(f.ctx, purged.ID), nil)
		if m := f.model(p.ID, "forty_one", ""); m.IID != 41 {
			f.Errorf("iid after a purged preset %d, want 41", m.IID)
		}
		again := &metadata.Model{Project: p.ID, Name: "again", IID: 40}
		f.wantErr("requesting a purged model's iid", f.s.CreateModel(f.ctx, again), nil)
		f.wantErr("negative iid", f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, Name: "neg", IID: -1}), metadata.ErrInvalid)
		// Only CreatedAt given: UpdatedAt is now.
		half := &metadata.Model{Project: p.ID, Name: "half", CreatedAt: srcCreated}
		f.wantErr("CreateModel(created only)", f.s.CreateModel(f.ctx, half), nil)
		if !half.CreatedAt.Equal(srcCreated) || !half.UpdatedAt.After(srcUpdated) {
			f.Errorf("created %v updated %v: want the source's creation and now", half.CreatedAt, half.UpdatedAt)
		}
		// The default model keeps iid 0 whatever iids were requested.
		if d, err := f.s.EnsureDefaultModel(f.ctx, p.ID); err != nil || d.IID != 0 {
			f.Errorf("EnsureDefaultModel = %+v, %v", d, err)
		}
	}},
	{"PresetCandidateIDs", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m, n, o := f.model(p.ID, "m", ""), f.model(p.ID, "n", ""), f.model(q.ID, "o", "")
		// A run of a deleted experiment, long finished: everything as the source had it.
		c := &metadata.Candidate{ModelID: m.ID, EID: eid(1), IID: 9, Name: "old run", UserID: "ann",
			Status: metadata.Failed, StartTime: 1_600_000_000_000, EndTime: 1_600_000_360_000,
			Lifecycle: metadata.Deleted, CreatedAt: srcCreated}
		f.wantErr("CreateCandidate(presets)", f.s.CreateCandidate(f.ctx, c, []metadata.Tag{{Key: "k", Value: "v"}}), nil)
		got, err := f.s.Candidate(f.ctx, metadata.CandidateRef{EID: eid(1)})
		if err != nil || got.ID != c.ID || got.IID != 9 || got.Name != "old run" || got.UserID != "ann" ||
			got.Status != metadata.Failed || got.StartTime != 1_600_000_000_000 || got.EndTime != 1_600_000_360_000 ||
			got.Lifecycle != metadata.Deleted || !got.CreatedAt.Equal(srcCreated) || got.Project != p.ID {
			f.Errorf("Candidate(eid) = %+v, %v", got, err)
		}
		if byIID, err := f.s.Candidate(f.ctx, metadata.CandidateRef{Project: p.ID, IID: 9}); err != nil || byIID.ID != c.ID {
			f.Errorf("Candidate(iid 9) = %+v, %v", byIID, err)
		}
		if rd := f.runData(c.ID); len(rd.Tags) != 1 {
			f.Errorf("tags %+v", rd.Tags)
		}
		// A run id is unique in the whole store; an iid in its project.
		for name, dup := range map[string]metadata.Candidate{
			"eid in another model":   {ModelID: n.ID, EID: eid(1)},
			"eid in another project": {ModelID: o.ID, EID: eid(1)},
			"iid of the project":     {ModelID: n.ID, IID: 9},
		} {
			f.wantErr(name, f.s.CreateCandidate(f.ctx, &dup, []metadata.Tag{{Key: "t", Value: "x"}}), metadata.ErrExists)
		}
		if cs, _, err := f.s.ListCandidates(f.ctx, n.ID, metadata.Page{}); err != nil || len(cs) != 0 {
			f.Errorf("refused creates left candidates: %d, %v", len(cs), err)
		}
		if other := f.candidate(o, metadata.Candidate{IID: 9}); other.IID != 9 {
			f.Errorf("iid 9 in another project: %d", other.IID)
		}
		// Drawn values continue past the presets.
		next := f.candidate(n, metadata.Candidate{})
		if next.IID != 10 || next.EID == (metadata.EID{}) || next.EID == eid(1) || next.CreatedAt.Equal(srcCreated) {
			f.Errorf("next candidate without presets: %+v", next)
		}
		if low := f.candidate(n, metadata.Candidate{IID: 3}); low.IID != 3 {
			f.Errorf("a free iid below the counter: %d", low.IID)
		}
		if after := f.candidate(n, metadata.Candidate{}); after.IID != 11 {
			f.Errorf("iid after a low preset %d, want 11", after.IID)
		}
		f.wantErr("negative iid", f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: n.ID, IID: -2}, nil), metadata.ErrInvalid)
		// A deleted candidate created as such is listed, and found by the views that admit it.
		all, _, err := f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: []uint64{m.ID}, View: metadata.DeletedOnly})
		if err != nil || len(all) != 1 || all[0].ID != c.ID {
			f.Errorf("deleted view: %v, %v", all, err)
		}
	}},
	{"PresetVersionSeq", func(f *fx) {
		p := f.project("p")
		m, fresh := f.model(p.ID, "m", ""), f.model(p.ID, "fresh", "")
		c := f.candidate(m, metadata.Candidate{})
		create := func(model *metadata.Model, seq int64, semver string) (*metadata.Version, error) {
			v := &metadata.Version{ModelID: model.ID, CandidateID: c.ID, Seq: seq, Semver: semver}
			return v, f.s.CreateVersion(f.ctx, v)
		}
		v, err := create(m, 3, "")
		if err != nil || v.Seq != 3 || v.Semver != "1.0.0" {
			f.Fatalf("seq 3: %+v, %v", v, err)
		}
		_, err = create(m, 3, "2.0.0")
		f.wantErr("a taken seq", err, metadata.ErrExists)
		_, err = create(m, 2, "2.0.0")
		f.wantErr("a seq below the high-water mark", err, metadata.ErrExists)
		if v, err := create(m, 0, ""); err != nil || v.Seq != 4 || v.Semver != "1.1.0" {
			f.Errorf("no preset after seq 3: %+v, %v", v, err)
		}
		ten, err := create(m, 10, "")
		if err != nil || ten.Seq != 10 {
			f.Fatalf("seq 10: %+v, %v", ten, err)
		}
		// A deleted version's seq stays used: an old models:/m/10 must never name other files.
		f.wantErr("DeleteVersion", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: 10}), nil)
		_, err = create(m, 10, "")
		f.wantErr("a deleted version's seq", err, metadata.ErrExists)
		if v, err := create(m, 11, ""); err != nil || v.Seq != 11 {
			f.Errorf("seq 11: %+v, %v", v, err)
		}
		if v, err := create(m, 0, ""); err != nil || v.Seq != 12 {
			f.Errorf("no preset after seq 11: %+v, %v", v, err)
		}
		_, err = create(m, -1, "")
		f.wantErr("negative seq", err, metadata.ErrInvalid)
		vs, _, err := f.s.ListVersions(f.ctx, m.ID, metadata.Page{})
		var seqs []int64
		for _, v := range vs {
			seqs = append(seqs, v.Seq)
		}
		if err != nil || fmt.Sprint(seqs) != "[3 4 11 12]" {
			f.Errorf("seqs %v, %v; want [3 4 11 12]", seqs, err)
		}
		// As an import creates them: ascending source numbers with gaps, the source's times.
		for _, seq := range []int64{1, 2, 5} {
			v := &metadata.Version{ModelID: fresh.ID, CandidateID: c.ID, Seq: seq, CreatedAt: srcCreated, UpdatedAt: srcUpdated}
			if err := f.s.CreateVersion(f.ctx, v); err != nil || v.Seq != seq || !v.CreatedAt.Equal(srcCreated) || !v.UpdatedAt.Equal(srcUpdated) {
				f.Errorf("import of version %d: %+v, %v", seq, v, err)
			}
		}
		got, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: fresh.ID, Seq: 5})
		if err != nil || got.Semver != "1.2.0" || !got.CreatedAt.Equal(srcCreated) || !got.UpdatedAt.Equal(srcUpdated) {
			f.Errorf("Version(seq 5) = %+v, %v", got, err)
		}
	}},
	{"PresetLoggedModelID", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		newer := f.loggedModel(m, metadata.LoggedModel{Name: "now"})
		old := f.loggedModel(m, metadata.LoggedModel{Name: "old", LMID: lmid(1), CreatedAt: srcCreated, UpdatedAt: srcUpdated})
		if old.LMID != lmid(1) || !old.CreatedAt.Equal(srcCreated) || !old.UpdatedAt.Equal(srcUpdated) || old.ID == newer.ID {
			f.Errorf("created %+v: want the source's id and times", old)
		}
		got, err := f.s.LoggedModel(f.ctx, metadata.LoggedModelRef{LMID: lmid(1)})
		if err != nil || got.ID != old.ID || got.Name != "old" || !got.CreatedAt.Equal(srcCreated) {
			f.Errorf("LoggedModel(lmid) = %+v, %v", got, err)
		}
		dup := &metadata.LoggedModel{ModelID: m.ID, Name: "dup", LMID: lmid(1)}
		f.wantErr("a taken logged model id", f.s.CreateLoggedModel(f.ctx, dup), metadata.ErrExists)
		dup.LMID = newer.LMID
		f.wantErr("a drawn logged model id", f.s.CreateLoggedModel(f.ctx, dup), metadata.ErrExists)
		// The source's creation time orders searches, newest first.
		future := f.loggedModel(m, metadata.LoggedModel{Name: "future", CreatedAt: time.Now().Add(24 * time.Hour).Truncate(time.Millisecond)})
		lms, _, err := f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{m.ID}})
		if err != nil || lmNames(lms) != "future,now,old" {
			f.Errorf("search order %s, %v; want future,now,old", lmNames(lms), err)
		}
		if future.LMID.IsZero() || future.LMID == lmid(1) {
			f.Errorf("drawn LMID %s", future.LMID)
		}
	}},
	{"JournalPutGetReplace", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		const src = "http://mlflow.example:5000"
		r := &metadata.ImportRecord{Project: p.ID, Source: src, Kind: metadata.ImportRun, SourceID: strings.Repeat("ab", 16),
			TargetID: 7, TargetIID: 3, State: metadata.ImportPending, UpdatedAt: srcCreated}
		f.wantErr("PutImportRecord", f.s.PutImportRecord(f.ctx, r), nil)
		if r.UpdatedAt.IsZero() || r.UpdatedAt.Equal(srcCreated) {
			f.Errorf("UpdatedAt %v: want filled with now", r.UpdatedAt)
		}
		got, err := f.s.ImportRecord(f.ctx, p.ID, src, metadata.ImportRun, r.SourceID)
		if err != nil || got.Project != p.ID || got.Source != src || got.Kind != metadata.ImportRun || got.SourceID != r.SourceID ||
			got.TargetID != 7 || got.TargetIID != 3 || got.State != metadata.ImportPending || got.Progress != 0 || !got.UpdatedAt.Equal(r.UpdatedAt) {
			f.Errorf("ImportRecord = %+v, %v; want %+v", got, err, r)
		}
		// Replacing keeps one record, the last one.
		done := *r
		done.State, done.Progress, done.Note, done.TargetIID = metadata.ImportDone, 25_000, "renamed: slug taken", 0
		f.wantErr("PutImportRecord(replace)", f.s.PutImportRecord(f.ctx, &done), nil)
		got, err = f.s.ImportRecord(f.ctx, p.ID, src, metadata.ImportRun, r.SourceID)
		if err != nil || got.State != metadata.ImportDone || got.Progress != 25_000 || got.Note != "renamed: slug taken" ||
			got.TargetIID != 0 || got.TargetID != 7 || got.UpdatedAt.Before(r.UpdatedAt) {
			f.Errorf("replaced record = %+v, %v", got, err)
		}
		if all, _, err := f.s.ListImportRecords(f.ctx, p.ID, "", "", metadata.Page{}); err != nil || len(all) != 1 {
			f.Errorf("records after a replace: %d, %v", len(all), err)
		}
		for name, key := range map[string]struct {
			project  int64
			source   string
			kind     metadata.ImportKind
			sourceID string
		}{
			"other project":   {q.ID, src, metadata.ImportRun, r.SourceID},
			"unknown project": {999, src, metadata.ImportRun, r.SourceID},
			"other source":    {p.ID, src + "/", metadata.ImportRun, r.SourceID},
			"other kind":      {p.ID, src, metadata.ImportExperiment, r.SourceID},
			"other id":        {p.ID, src, metadata.ImportRun, r.SourceID[1:]},
			"unknown kind":    {p.ID, src, "runs", r.SourceID},
			"empty source":    {p.ID, "", metadata.ImportRun, r.SourceID},
			"empty id":        {p.ID, src, metadata.ImportRun, ""},
		} {
			_, err := f.s.ImportRecord(f.ctx, key.project, key.source, key.kind, key.sourceID)
			f.wantErr(name, err, metadata.ErrNotFound)
		}
		// The longest source id there is: an artifact of a logged model at the longest path.
		long := &metadata.ImportRecord{Project: p.ID, Source: strings.Repeat("s", metadata.MaxImportSourceLen), Kind: metadata.ImportArtifact,
			SourceID: lmid(2).String() + "/" + strings.Repeat("d/", metadata.MaxFilePathLen/2-1) + "xx", State: metadata.ImportDone,
			Note: strings.Repeat("n", metadata.MaxImportNoteLen)}
		f.wantErr("the longest record", f.s.PutImportRecord(f.ctx, long), nil)
		if got, err := f.s.ImportRecord(f.ctx, p.ID, long.Source, long.Kind, long.SourceID); err != nil || got.SourceID != long.SourceID {
			f.Errorf("the longest record back: %v", err)
		}
		unknown := *r
		unknown.Project = 999
		f.wantErr("unknown project", f.s.PutImportRecord(f.ctx, &unknown), metadata.ErrNotFound)
		for name, mutate := range map[string]func(r *metadata.ImportRecord){
			"empty source":      func(r *metadata.ImportRecord) { r.Source = "" },
			"long source":       func(r *metadata.ImportRecord) { r.Source = strings.Repeat("s", metadata.MaxImportSourceLen+1) },
			"NUL in source":     func(r *metadata.ImportRecord) { r.Source = "a\x00b" },
			"bad utf-8 source":  func(r *metadata.ImportRecord) { r.Source = "\xff" },
			"empty kind":        func(r *metadata.ImportRecord) { r.Kind = "" },
			"unknown kind":      func(r *metadata.ImportRecord) { r.Kind = "experiments" },
			"empty source id":   func(r *metadata.ImportRecord) { r.SourceID = "" },
			"long source id":    func(r *metadata.ImportRecord) { r.SourceID = strings.Repeat("i", metadata.MaxImportSourceIDLen+1) },
			"NUL in source id":  func(r *metadata.ImportRecord) { r.SourceID = "run\x00x" },
			"bad utf-8 id":      func(r *metadata.ImportRecord) { r.SourceID = "a\xc3" },
			"empty state":       func(r *metadata.ImportRecord) { r.State = "" },
			"unknown state":     func(r *metadata.ImportRecord) { r.State = "failed" },
			"long note":         func(r *metadata.ImportRecord) { r.Note = strings.Repeat("n", metadata.MaxImportNoteLen+1) },
			"bad utf-8 note":    func(r *metadata.ImportRecord) { r.Note = "\xff" },
			"negative progress": func(r *metadata.ImportRecord) { r.Progress = -1 },
			"negative iid":      func(r *metadata.ImportRecord) { r.TargetIID = -1 },
		} {
			bad := *r
			bad.SourceID = "bad-" + name
			mutate(&bad)
			f.wantErr(name, f.s.PutImportRecord(f.ctx, &bad), metadata.ErrInvalid)
		}
		f.wantErr("nil record", f.s.PutImportRecord(f.ctx, nil), metadata.ErrInvalid)
		if all, _, err := f.s.ListImportRecords(f.ctx, p.ID, "", "", metadata.Page{}); err != nil || len(all) != 2 {
			f.Errorf("records after refused puts: %d, %v; want 2", len(all), err)
		}
	}},
	{"JournalListing", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		// Sources that are prefixes of one another, kinds in and out of order, ids that sort as text.
		sources := []string{"https://b.example", "https://a.example/x", "https://a.example", "https://a.example0"}
		kinds := []metadata.ImportKind{metadata.ImportRun, metadata.ImportArtifact, metadata.ImportMetric, metadata.ImportExperiment}
		ids := []string{"2", "10", "1", "1/a", "é"}
		var want []*metadata.ImportRecord
		for i, src := range sources {
			for j, kind := range kinds[:1+(i+1)%len(kinds)] {
				for k, id := range ids[:1+(i+j)%len(ids)] {
					r := &metadata.ImportRecord{Project: p.ID, Source: src, Kind: kind, SourceID: id, State: metadata.ImportDone,
						TargetID: uint64(100*i + 10*j + k)}
					f.wantErr("PutImportRecord", f.s.PutImportRecord(f.ctx, r), nil)
					want = append(want, r)
					noise := *r
					noise.Project = q.ID
					f.wantErr("PutImportRecord(q)", f.s.PutImportRecord(f.ctx, &noise), nil)
				}
			}
		}
		slices.SortFunc(want, func(a, b *metadata.ImportRecord) int {
			if c := strings.Compare(a.Source, b.Source); c != 0 {
				return c
			}
			if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
				return c
			}
			return strings.Compare(a.SourceID, b.SourceID)
		})
		describe := func(rs []*metadata.ImportRecord) string {
			var out []string
			for _, r := range rs {
				out = append(out, fmt.Sprintf("%d:%s|%s|%s=%d", r.Project, r.Source, r.Kind, r.SourceID, r.TargetID))
			}
			return strings.Join(out, " ")
		}
		filters := []struct {
			source string
			kind   metadata.ImportKind
		}{{"", ""}, {"https://a.example", ""}, {"https://a.example", metadata.ImportArtifact}, {"", metadata.ImportMetric},
			{"", metadata.ImportRun}, {"https://none.example", ""}, {"", metadata.ImportLoggedModel}}
		for _, flt := range filters {
			expect := slices.DeleteFunc(slices.Clone(want), func(r *metadata.ImportRecord) bool {
				return (flt.source != "" && r.Source != flt.source) || (flt.kind != "" && r.Kind != flt.kind)
			})
			for _, limit := range []int{0, 1, 2, 3, 1000} {
				got, _ := pageAll(f, limit, func(pg metadata.Page) ([]*metadata.ImportRecord, string, error) {
					return f.s.ListImportRecords(f.ctx, p.ID, flt.source, flt.kind, pg)
				})
				if describe(got) != describe(expect) {
					f.Errorf("ListImportRecords(%q, %q) limit %d:\n got %s\nwant %s", flt.source, flt.kind, limit, describe(got), describe(expect))
				}
			}
		}
		_, _, err := f.s.ListImportRecords(f.ctx, 999, "", "", metadata.Page{})
		f.wantErr("unknown project", err, metadata.ErrNotFound)
		_, _, err = f.s.ListImportRecords(f.ctx, p.ID, "", "runs", metadata.Page{})
		f.wantErr("unknown kind", err, metadata.ErrInvalid)
		_, _, err = f.s.ListImportRecords(f.ctx, p.ID, "a\x00b", "", metadata.Page{})
		f.wantErr("NUL in source", err, metadata.ErrInvalid)
		_, tok, err := f.s.ListImportRecords(f.ctx, p.ID, "", metadata.ImportRun, metadata.Page{Limit: 1})
		if err != nil || tok == "" {
			f.Fatalf("first page: %q, %v", tok, err)
		}
		_, _, err = f.s.ListImportRecords(f.ctx, p.ID, "", metadata.ImportMetric, metadata.Page{Token: tok})
		f.wantErr("a token of another kind", err, metadata.ErrInvalid)
		_, _, err = f.s.ListImportRecords(f.ctx, q.ID, "", metadata.ImportRun, metadata.Page{Token: tok})
		f.wantErr("a token of another project", err, metadata.ErrInvalid)
		_, _, err = f.s.ListModels(f.ctx, p.ID, metadata.Page{Token: tok})
		f.wantErr("a journal token for models", err, metadata.ErrInvalid)
	}},
	{"JournalComposesWithUpdate", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		const src = "http://mlflow.example"
		importRun := func(e metadata.EID, then func(ctx context.Context) error) error {
			return f.s.Update(f.ctx, func(ctx context.Context) error {
				c := &metadata.Candidate{ModelID: m.ID, EID: e, Status: metadata.Finished}
				if err := f.s.CreateCandidate(ctx, c, nil); err != nil {
					return err
				}
				r := &metadata.ImportRecord{Project: p.ID, Source: src, Kind: metadata.ImportRun, SourceID: e.String(),
					TargetID: c.ID, TargetIID: c.IID, State: metadata.ImportDone}
				if err := f.s.PutImportRecord(ctx, r); err != nil {
					return err
				}
				// Reads in the transaction see its writes.
				got, err := f.s.ImportRecord(ctx, p.ID, src, metadata.ImportRun, e.String())
				if err != nil || got.TargetID != c.ID {
					return fmt.Errorf("record inside the transaction: %+v, %v", got, err)
				}
				return then(ctx)
			})
		}
		f.wantErr("committed import", importRun(eid(1), func(context.Context) error { return nil }), nil)
		r, err := f.s.ImportRecord(f.ctx, p.ID, src, metadata.ImportRun, eid(1).String())
		if err != nil {
			f.Fatalf("record after commit: %v", err)
		}
		if c, err := f.s.Candidate(f.ctx, metadata.CandidateRef{EID: eid(1)}); err != nil || c.ID != r.TargetID || c.IID != r.TargetIID {
			f.Errorf("candidate %+v, %v; record %+v", c, err, r)
		}

		f.wantErr("aborted import", importRun(eid(2), func(context.Context) error { return errAbort }), errAbort)
		// A failed write inside, ignored by fn, aborts it too.
		err = importRun(eid(3), func(ctx context.Context) error {
			_ = f.s.PutImportRecord(ctx, &metadata.ImportRecord{Project: 999, Source: src, Kind: metadata.ImportRun, SourceID: "x", State: metadata.ImportDone})
			return nil
		})
		f.wantErr("import with a failed put", err, metadata.ErrNotFound)
		for _, e := range []metadata.EID{eid(2), eid(3)} {
			_, err := f.s.Candidate(f.ctx, metadata.CandidateRef{EID: e})
			f.wantErr("candidate of a rolled-back import", err, metadata.ErrNotFound)
			_, err = f.s.ImportRecord(f.ctx, p.ID, src, metadata.ImportRun, e.String())
			f.wantErr("record of a rolled-back import", err, metadata.ErrNotFound)
		}
		// Resuming: the run imported before is found, and importing it again is refused, not duplicated.
		f.wantErr("importing a run again", importRun(eid(1), func(context.Context) error { return nil }), metadata.ErrExists)
		if all, _, err := f.s.ListImportRecords(f.ctx, p.ID, src, metadata.ImportRun, metadata.Page{}); err != nil || len(all) != 1 {
			f.Errorf("records: %d, %v; want 1", len(all), err)
		}
		if cs, _, err := f.s.ListCandidates(f.ctx, m.ID, metadata.Page{}); err != nil || len(cs) != 1 {
			f.Errorf("candidates: %d, %v; want 1", len(cs), err)
		}
	}},
}
