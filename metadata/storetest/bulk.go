package storetest

import (
	"context"
	"reflect"

	"github.com/mlgate/mlgate/metadata"
)

// bulkTests hold stores that implement metadata.BulkReader to its contract: for every id, the answer of
// the per-record method; ids the per-record method refuses with ErrNotFound absent (RunDataOf,
// LoggedModelMetricsOf) or present and empty (VersionsBackedByAny). Stores without it skip them.
var bulkTests = []test{
	{"SameAsPerRecord", func(f *fx) {
		b, ok := f.s.(metadata.BulkReader)
		if !ok {
			f.Skip("the store does not implement metadata.BulkReader")
		}
		p := f.project("p")
		m, m2 := f.model(p.ID, "m", ""), f.model(p.ID, "m2", "")
		c1, c2 := f.candidate(m, metadata.Candidate{}), f.candidate(m, metadata.Candidate{Name: "second"})
		bare := f.candidate(m2, metadata.Candidate{}) // nothing logged: empty lists, not nil
		lm1 := f.loggedModel(m, metadata.LoggedModel{SourceRunID: c1.ID})
		lm2 := f.loggedModel(m, metadata.LoggedModel{Name: "other"})
		lmBare := f.loggedModel(m2, metadata.LoggedModel{})
		f.log(c1.ID, params{{Key: "lr", Value: "0.1"}, {Key: "a", Value: ""}},
			metrics{{Key: "loss", Value: 1, Timestamp: 1}, {Key: "loss", Value: 0.5, Timestamp: 2, Step: 1},
				{Key: "acc", Value: 0.9, Timestamp: 3, LoggedModel: lm1.LMID, DatasetName: "eval", DatasetDigest: "e35a"},
				{Key: "acc", Value: 0.8, Timestamp: 4, Step: 2, LoggedModel: lm1.LMID}},
			tags{{Key: "z", Value: "1"}, {Key: "b", Value: "2"}})
		f.log(c2.ID, params{{Key: "lr", Value: "0.2"}}, metrics{{Key: "acc", Value: 0.7, Timestamp: 5, LoggedModel: lm2.LMID},
			{Key: "zeta", Value: -1, Timestamp: 5, LoggedModel: lm1.LMID}}, tags{{Key: "t", Value: "v"}})
		train := metadata.Dataset{Name: "train", Digest: "f9e2", SourceType: "code", Source: "{}", Schema: `{"cols":1}`, Profile: `{"rows":6}`}
		eval := metadata.Dataset{Name: "eval", Digest: "e35a", SourceType: "code", Source: "{}"}
		f.wantErr("LogInputs", f.s.LogInputs(f.ctx, c1.ID, []metadata.DatasetInput{{Dataset: train,
			Tags: []metadata.Tag{{Key: "mlflow.data.context", Value: "training"}}}, {Dataset: eval}}, []metadata.LMID{lm2.LMID, lm1.LMID}), nil)
		f.wantErr("LogInputs", f.s.LogInputs(f.ctx, c2.ID, []metadata.DatasetInput{{Dataset: eval}}, nil), nil)
		f.wantErr("LogOutputs", f.s.LogOutputs(f.ctx, c1.ID, []metadata.ModelOutput{{LoggedModel: lm1.LMID, Step: 3}, {LoggedModel: lm2.LMID}}), nil)
		f.version(m, c1, "1.0.0")
		f.version(m2, c1, "")
		f.version(m, c2, "")
		for _, v := range []*metadata.Version{{ModelID: m2.ID, LoggedModelID: lm1.ID}, {ModelID: m.ID, LoggedModelID: lm1.ID}} {
			f.wantErr("CreateVersion of a logged model", f.s.CreateVersion(f.ctx, v), nil)
		}
		deleted := metadata.Deleted
		gone := f.candidate(m, metadata.Candidate{}) // deleted runs still have their data
		if _, err := f.s.UpdateCandidate(f.ctx, gone.ID, metadata.CandidateUpdate{Lifecycle: &deleted}); err != nil {
			f.Fatalf("UpdateCandidate: %v", err)
		}
		const unknown = 1 << 40

		runs := []uint64{c2.ID, bare.ID, c1.ID, unknown, gone.ID, c2.ID, lm1.ID}
		rds, err := b.RunDataOf(f.ctx, runs)
		if err != nil {
			f.Fatalf("RunDataOf: %v", err)
		}
		for _, id := range runs {
			want, werr := f.s.RunData(f.ctx, id)
			got, found := rds[id]
			switch {
			case werr != nil && !found:
				f.wantErr("RunData of an id absent from RunDataOf", werr, metadata.ErrNotFound)
			case werr != nil:
				f.Errorf("RunDataOf has %d, RunData fails: %v", id, werr)
			case !found:
				f.Errorf("RunDataOf lacks %d", id)
			case !reflect.DeepEqual(got, want):
				f.Errorf("RunDataOf[%d] = %+v, RunData %+v", id, got, want)
			}
		}
		if len(rds) != 4 {
			f.Errorf("RunDataOf answered %d ids, want c1, c2, bare and gone", len(rds))
		}

		lms := []uint64{lm2.ID, lmBare.ID, unknown, lm1.ID, lm1.ID, c1.ID}
		lmms, err := b.LoggedModelMetricsOf(f.ctx, lms)
		if err != nil {
			f.Fatalf("LoggedModelMetricsOf: %v", err)
		}
		for _, id := range lms {
			want, werr := f.s.LoggedModelMetrics(f.ctx, id)
			got, found := lmms[id]
			switch {
			case werr != nil && !found:
				f.wantErr("LoggedModelMetrics of an id absent from LoggedModelMetricsOf", werr, metadata.ErrNotFound)
			case werr != nil:
				f.Errorf("LoggedModelMetricsOf has %d, LoggedModelMetrics fails: %v", id, werr)
			case !found:
				f.Errorf("LoggedModelMetricsOf lacks %d", id)
			case !reflect.DeepEqual(got, want):
				f.Errorf("LoggedModelMetricsOf[%d] = %+v, LoggedModelMetrics %+v", id, got, want)
			}
		}
		if len(lmms) != 3 || len(lmms[lm1.ID]) != 3 {
			f.Errorf("LoggedModelMetricsOf: %d ids, %d points of lm1; want 3 and 3", len(lmms), len(lmms[lm1.ID]))
		}

		owners := []uint64{lm1.ID, c2.ID, bare.ID, unknown, c1.ID, lmBare.ID, c1.ID}
		vs, err := b.VersionsBackedByAny(f.ctx, owners)
		if err != nil {
			f.Fatalf("VersionsBackedByAny: %v", err)
		}
		for _, id := range owners {
			want, werr := f.s.VersionsBackedBy(f.ctx, id)
			if werr != nil {
				f.Fatalf("VersionsBackedBy(%d): %v", id, werr)
			}
			if got, found := vs[id]; !found || !reflect.DeepEqual(got, want) {
				f.Errorf("VersionsBackedByAny[%d] = %+v (present %v), VersionsBackedBy %+v", id, got, found, want)
			}
		}
		if len(vs) != 6 || len(vs[c1.ID]) != 2 || len(vs[lm1.ID]) != 2 {
			f.Errorf("VersionsBackedByAny: %d ids, %d versions of c1, %d of lm1; want 6, 2, 2", len(vs), len(vs[c1.ID]), len(vs[lm1.ID]))
		}

		// Empty and nil ids are empty maps; inside Update, the reads join the transaction.
		for _, ids := range [][]uint64{nil, {}} {
			r, err1 := b.RunDataOf(f.ctx, ids)
			l, err2 := b.LoggedModelMetricsOf(f.ctx, ids)
			v, err3 := b.VersionsBackedByAny(f.ctx, ids)
			if err1 != nil || err2 != nil || err3 != nil || r == nil || l == nil || v == nil || len(r)+len(l)+len(v) != 0 {
				f.Errorf("bulk reads of %v: %v %v %v, errors %v %v %v", ids, r, l, v, err1, err2, err3)
			}
		}
		err = f.s.Update(f.ctx, func(ctx context.Context) error {
			if err := f.s.LogBatch(ctx, bare.ID, params{{Key: "in", Value: "tx"}}, nil, nil); err != nil {
				return err
			}
			r, err := b.RunDataOf(ctx, []uint64{bare.ID})
			if err != nil {
				return err
			}
			if rd := r[bare.ID]; rd == nil || len(rd.Params) != 1 {
				f.Errorf("RunDataOf inside Update does not see the transaction's write: %+v", rd)
			}
			return nil
		})
		f.wantErr("Update with a bulk read", err, nil)
	}},
}
