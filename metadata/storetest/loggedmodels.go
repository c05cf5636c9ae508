package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

func (f *fx) loggedModel(m *metadata.Model, lm metadata.LoggedModel) *metadata.LoggedModel {
	f.Helper()
	lm.ModelID = m.ID
	if lm.Name == "" {
		lm.Name = "model"
	}
	if err := f.s.CreateLoggedModel(f.ctx, &lm); err != nil {
		f.Fatalf("CreateLoggedModel: %v", err)
	}
	return &lm
}

func lmNames(lms []*metadata.LoggedModel) string {
	var out []string
	for _, lm := range lms {
		out = append(out, lm.Name)
	}
	return strings.Join(out, ",")
}

var loggedModelTests = []test{
	{"CreateGetUpdate", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		lm := f.loggedModel(m, metadata.LoggedModel{Name: "model", ModelType: "regressor", SourceRunID: c.ID, UserID: "ann",
			Params: []metadata.Param{{Key: "lr", Value: "0.1"}, {Key: "alpha", Value: "1"}},
			Tags:   []metadata.Tag{{Key: "team", Value: "a"}, {Key: "family", Value: "linear"}, {Key: "team", Value: "b"}}})
		if lm.ID == 0 || lm.ID == c.ID || lm.LMID.IsZero() || lm.Project != p.ID || lm.CreatedAt.IsZero() || lm.Status != metadata.LoggedModelPending ||
			lm.SourceRun != c.EID {
			f.Errorf("filled fields: %+v", lm)
		}
		if s := lm.LMID.String(); !strings.HasPrefix(s, "m-") || len(s) != 34 {
			f.Errorf("LMID %q", s)
		}
		if fmt.Sprint(lm.Params) != "[{alpha 1} {lr 0.1}]" || fmt.Sprint(lm.Tags) != "[{family linear} {team b}]" {
			f.Errorf("params %v tags %v: want sorted, the last of a key winning", lm.Params, lm.Tags)
		}
		// A candidate created afterwards gets an id of its own: logged models draw from the same sequence.
		if c2 := f.candidate(m, metadata.Candidate{}); c2.ID == lm.ID {
			f.Errorf("candidate %d shares its id with logged model %d", c2.ID, lm.ID)
		}
		for _, ref := range []metadata.LoggedModelRef{{ID: lm.ID}, {LMID: lm.LMID}, {LMID: lm.LMID, Project: p.ID}} {
			got, err := f.s.LoggedModel(f.ctx, ref)
			if err != nil || got.LMID != lm.LMID || got.Name != "model" || got.SourceRunID != c.ID || got.UserID != "ann" {
				f.Errorf("LoggedModel(%+v) = %+v, %v", ref, got, err)
			}
		}
		_, err := f.s.LoggedModel(f.ctx, metadata.LoggedModelRef{LMID: lm.LMID, Project: f.project("q").ID})
		f.wantErr("logged model of another project", err, metadata.ErrNotFound)
		_, err = f.s.LoggedModel(f.ctx, metadata.LoggedModelRef{})
		f.wantErr("empty ref", err, metadata.ErrInvalid)

		ready, msg := metadata.LoggedModelReady, "done"
		got, err := f.s.UpdateLoggedModel(f.ctx, lm.ID, metadata.LoggedModelUpdate{Status: &ready, StatusMessage: &msg,
			SetTags: []metadata.Tag{{Key: "owner", Value: "x"}}, DeleteTags: []string{"team", "absent"},
			Params: []metadata.Param{{Key: "lr", Value: "0.1"}, {Key: "beta", Value: "2"}}})
		if err != nil || got.Status != ready || got.StatusMessage != "done" || !got.UpdatedAt.After(got.CreatedAt.Add(-1)) ||
			fmt.Sprint(got.Tags) != "[{family linear} {owner x}]" || fmt.Sprint(got.Params) != "[{alpha 1} {beta 2} {lr 0.1}]" {
			f.Errorf("update: %+v, %v", got, err)
		}
		_, err = f.s.UpdateLoggedModel(f.ctx, lm.ID, metadata.LoggedModelUpdate{Params: []metadata.Param{{Key: "lr", Value: "0.2"}}})
		f.wantErr("changed param", err, metadata.ErrInvalid)
		_, err = f.s.UpdateLoggedModel(f.ctx, lm.ID+1000, metadata.LoggedModelUpdate{})
		f.wantErr("unknown logged model", err, metadata.ErrNotFound)
	}},
	{"CreateErrors", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m, other := f.model(p.ID, "m", ""), f.model(q.ID, "o", "")
		foreign := f.candidate(other, metadata.Candidate{})
		for name, tc := range map[string]struct {
			lm   metadata.LoggedModel
			want error
		}{
			"unknown model":         {metadata.LoggedModel{ModelID: 999, Name: "x"}, metadata.ErrNotFound},
			"run of other project":  {metadata.LoggedModel{ModelID: m.ID, Name: "x", SourceRunID: foreign.ID}, metadata.ErrNotFound},
			"model outside project": {metadata.LoggedModel{ModelID: m.ID, Name: "x", Project: q.ID}, metadata.ErrNotFound},
			"empty name":            {metadata.LoggedModel{ModelID: m.ID}, metadata.ErrInvalid},
			"bad status":            {metadata.LoggedModel{ModelID: m.ID, Name: "x", Status: 9}, metadata.ErrInvalid},
			"long param":            {metadata.LoggedModel{ModelID: m.ID, Name: "x", Params: []metadata.Param{{Key: "k", Value: strings.Repeat("v", 251)}}}, metadata.ErrInvalid},
		} {
			lm := tc.lm
			f.wantErr(name, f.s.CreateLoggedModel(f.ctx, &lm), tc.want)
		}
	}},
	{"LinkedMetrics", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		lm := f.loggedModel(m, metadata.LoggedModel{SourceRunID: c.ID})
		f.log(c.ID, nil, []metadata.Metric{
			{Key: "loss", Value: 1, Timestamp: 1, Step: 0, LoggedModel: lm.LMID},
			{Key: "loss", Value: 0.5, Timestamp: 2, Step: 1},
			{Key: "acc", Value: 0.9, Timestamp: 3, Step: 0, LoggedModel: lm.LMID, DatasetName: "eval", DatasetDigest: "e35a"},
		}, nil)
		got, err := f.s.LoggedModelMetrics(f.ctx, lm.ID)
		if err != nil {
			f.Fatalf("LoggedModelMetrics: %v", err)
		}
		var desc []string
		for _, pt := range got {
			desc = append(desc, fmt.Sprintf("%s=%g@%d run=%v ds=%s/%s", pt.Key, pt.Value, pt.Step, pt.Run == c.EID, pt.DatasetName, pt.DatasetDigest))
			if pt.LoggedModel != lm.LMID {
				f.Errorf("point %v lacks its logged model", pt)
			}
		}
		if want := "acc=0.9@0 run=true ds=eval/e35a,loss=1@0 run=true ds=/"; strings.Join(desc, ",") != want {
			f.Errorf("logged model metrics %v, want %s", desc, want)
		}
		// The run keeps every point in its history, with the links; latest values are the run's own.
		hist, _, err := f.s.MetricHistory(f.ctx, c.ID, "acc", metadata.Page{})
		if err != nil || len(hist) != 1 || hist[0].LoggedModel != lm.LMID || hist[0].DatasetName != "eval" || hist[0].DatasetDigest != "e35a" {
			f.Errorf("history of acc: %+v, %v", hist, err)
		}
		hist, _, _ = f.s.MetricHistory(f.ctx, c.ID, "loss", metadata.Page{})
		if len(hist) != 2 || !hist[1].LoggedModel.IsZero() {
			f.Errorf("history of loss: %+v", hist)
		}
		if rd := f.runData(c.ID); len(rd.Metrics) != 2 || rd.Metrics[1].Value != 0.5 {
			f.Errorf("latest metrics: %+v", rd.Metrics)
		}
		// A point naming an unknown logged model, or one of another project, writes nothing.
		other := f.loggedModel(f.model(q.ID, "o", ""), metadata.LoggedModel{})
		for _, bad := range []metadata.LMID{{1}, other.LMID} {
			err := f.s.LogBatch(f.ctx, c.ID, nil, []metadata.Metric{{Key: "x", Value: 1, LoggedModel: bad}}, nil)
			f.wantErr("metric of a logged model not in the project", err, metadata.ErrNotFound)
		}
		if rd := f.runData(c.ID); len(rd.Metrics) != 2 {
			f.Errorf("a refused batch left metrics: %+v", rd.Metrics)
		}
	}},
	{"SearchOrders", func(f *fx) {
		p := f.project("p")
		m, n := f.model(p.ID, "m", ""), f.model(p.ID, "n", "")
		c := f.candidate(m, metadata.Candidate{})
		c2 := f.candidate(n, metadata.Candidate{})
		nan := math.NaN()
		for i, spec := range []struct {
			model *metadata.Model
			cand  *metadata.Candidate
			acc   *float64
		}{{m, c, ptr(0.5)}, {m, c, nil}, {n, c2, ptr(0.9)}, {m, c, &nan}, {n, c2, ptr(0.1)}} {
			lm := f.loggedModel(spec.model, metadata.LoggedModel{Name: fmt.Sprintf("lm%d", i)})
			if spec.acc != nil {
				f.log(spec.cand.ID, nil, []metadata.Metric{{Key: "acc", Value: *spec.acc, Timestamp: 1, LoggedModel: lm.LMID}}, nil)
			}
		}
		ids := []uint64{m.ID, n.ID}
		for _, tc := range []struct {
			order *metadata.MetricOrder
			want  string
		}{
			{nil, "lm4,lm3,lm2,lm1,lm0"},
			{&metadata.MetricOrder{Key: "acc"}, "lm4,lm0,lm2,lm3,lm1"},
			{&metadata.MetricOrder{Key: "acc", Desc: true}, "lm2,lm0,lm4,lm3,lm1"},
		} {
			all, pages := pageAll(f, 2, func(pg metadata.Page) ([]*metadata.LoggedModel, string, error) {
				return f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: ids, OrderByMetric: tc.order, Page: pg})
			})
			if got := lmNames(all); got != tc.want || pages != 3 {
				f.Errorf("order %+v: %s in %d pages, want %s in 3", tc.order, got, pages, tc.want)
			}
		}
		one, _, err := f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{n.ID}})
		if err != nil || lmNames(one) != "lm4,lm2" {
			f.Errorf("one model: %s, %v", lmNames(one), err)
		}
		_, tok, _ := f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: ids, Page: metadata.Page{Limit: 1}})
		_, _, err = f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: ids, OrderByMetric: &metadata.MetricOrder{Key: "acc"}, Page: metadata.Page{Token: tok}})
		f.wantErr("token of another query", err, metadata.ErrInvalid)
		_, _, err = f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{})
		f.wantErr("no model", err, metadata.ErrInvalid)
		// Candidate tokens and logged-model tokens are not interchangeable either.
		_, ctok, _ := f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: ids, Page: metadata.Page{Limit: 1}})
		if ctok != "" {
			_, _, err = f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: ids, Page: metadata.Page{Token: ctok}})
			f.wantErr("a candidate token", err, metadata.ErrInvalid)
		}
	}},
	{"FilesVersionsAndDelete", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		lm := f.loggedModel(m, metadata.LoggedModel{SourceRunID: c.ID})
		f.log(c.ID, nil, []metadata.Metric{{Key: "acc", Value: 1, LoggedModel: lm.LMID}}, nil)
		// A logged model owns files as a candidate does, under its own id.
		f.mustCommit(lm.ID, "MLmodel")
		f.mustCommit(lm.ID, "data/model.pkl")
		f.mustCommit(c.ID, "MLmodel")
		files, _, err := f.s.ListFiles(f.ctx, lm.ID, "", metadata.Page{})
		if err != nil || len(files) != 2 {
			f.Fatalf("files of the logged model: %v, %v", files, err)
		}
		v := &metadata.Version{ModelID: m.ID, LoggedModelID: lm.ID}
		if err := f.s.CreateVersion(f.ctx, v); err != nil || v.Owner() != lm.ID || v.Semver != "1.0.0" {
			f.Fatalf("version backed by the logged model: %+v, %v", v, err)
		}
		both := &metadata.Version{ModelID: m.ID, LoggedModelID: lm.ID, CandidateID: c.ID}
		f.wantErr("version with two owners", f.s.CreateVersion(f.ctx, both), metadata.ErrInvalid)
		f.wantErr("version of an unknown logged model", f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, LoggedModelID: lm.ID + 1000}), metadata.ErrNotFound)
		pv, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "m", "1.0.0", 0)
		if err != nil || pv.Created || pv.Candidate != nil || pv.Version.LoggedModelID != lm.ID {
			f.Errorf("package version backed by a logged model: %+v, %v", pv, err)
		}
		// Another model's version may reference the same logged model; each owner lists its own.
		reg := f.model(p.ID, "reg", "")
		v2 := &metadata.Version{ModelID: reg.ID, LoggedModelID: lm.ID}
		f.wantErr("version of another model", f.s.CreateVersion(f.ctx, v2), nil)
		vc := &metadata.Version{ModelID: reg.ID, CandidateID: c.ID}
		f.wantErr("version backed by the run", f.s.CreateVersion(f.ctx, vc), nil)
		backed := func(owner uint64) string {
			vs, err := f.s.VersionsBackedBy(f.ctx, owner)
			if err != nil {
				f.Fatalf("VersionsBackedBy(%d): %v", owner, err)
			}
			var out []string
			for _, v := range vs {
				out = append(out, fmt.Sprintf("%d/%s", v.ModelID, v.Semver))
			}
			return strings.Join(out, ",")
		}
		if got, want := backed(lm.ID), fmt.Sprintf("%d/1.0.0,%d/1.0.0", m.ID, reg.ID); got != want {
			f.Errorf("versions backed by the logged model: %s, want %s", got, want)
		}
		if got, want := backed(c.ID), fmt.Sprintf("%d/1.1.0", reg.ID); got != want {
			f.Errorf("versions backed by the run: %s, want %s", got, want)
		}
		if got := backed(lm.ID + 1000); got != "" {
			f.Errorf("versions backed by an unknown owner: %s", got)
		}
		f.wantErr("DeleteVersion of the other model", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: reg.ID, Seq: v2.Seq}), nil)
		_, err = f.s.DeleteLoggedModel(f.ctx, lm.ID)
		f.wantErr("delete while a version is backed by it", err, metadata.ErrConflict)
		f.wantErr("purge of a model with a logged model", f.s.PurgeModel(f.ctx, m.ID), metadata.ErrConflict)
		f.wantErr("DeleteVersion", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}), nil)
		if got := backed(lm.ID); got != "" {
			f.Errorf("versions backed by the logged model after deletes: %s", got)
		}
		gone, err := f.s.DeleteLoggedModel(f.ctx, lm.ID)
		if err != nil || len(gone) != 2 || gone[0].OwnerID != lm.ID {
			f.Fatalf("DeleteLoggedModel: %v, %v", gone, err)
		}
		_, err = f.s.LoggedModel(f.ctx, metadata.LoggedModelRef{LMID: lm.LMID})
		f.wantErr("deleted logged model", err, metadata.ErrNotFound)
		_, err = f.s.LoggedModelMetrics(f.ctx, lm.ID)
		f.wantErr("metrics of a deleted logged model", err, metadata.ErrNotFound)
		all, _, err := f.s.SearchLoggedModels(f.ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{m.ID}, OrderByMetric: &metadata.MetricOrder{Key: "acc"}})
		if err != nil || len(all) != 0 {
			f.Errorf("search after delete: %v, %v", lmNames(all), err)
		}
		if files, _, _ := f.s.ListFiles(f.ctx, c.ID, "", metadata.Page{}); len(files) != 1 {
			f.Errorf("the run's own files changed: %v", files)
		}
		// The run's history keeps its points.
		if h, _, err := f.s.MetricHistory(f.ctx, c.ID, "acc", metadata.Page{}); err != nil || len(h) != 1 {
			f.Errorf("run history after delete: %v, %v", h, err)
		}
	}},
	{"InputsOutputsDatasets", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "m", "")
		c, c2 := f.candidate(m, metadata.Candidate{}), f.candidate(m, metadata.Candidate{})
		lm := f.loggedModel(m, metadata.LoggedModel{})
		train := metadata.Dataset{Name: "train", Digest: "f9e2", SourceType: "code", Source: "{}", Schema: `{"cols":1}`, Profile: `{"rows":6}`}
		eval := metadata.Dataset{Name: "eval", Digest: "e35a", SourceType: "code", Source: "{}"}
		ctxTag := func(v string) []metadata.Tag { return []metadata.Tag{{Key: "mlflow.data.context", Value: v}} }
		f.wantErr("LogInputs", f.s.LogInputs(f.ctx, c.ID, []metadata.DatasetInput{{Dataset: train, Tags: ctxTag("training")}, {Dataset: eval, Tags: ctxTag("eval")}}, []metadata.LMID{lm.LMID}), nil)
		// Again, with another description and tags: stored once, the first kept.
		changed := train
		changed.Profile = `{"rows":7}`
		f.wantErr("LogInputs again", f.s.LogInputs(f.ctx, c.ID, []metadata.DatasetInput{{Dataset: changed, Tags: ctxTag("other")}}, []metadata.LMID{lm.LMID}), nil)
		f.wantErr("LogInputs of another run", f.s.LogInputs(f.ctx, c2.ID, []metadata.DatasetInput{{Dataset: train, Tags: ctxTag("eval")}}, nil), nil)
		f.wantErr("LogOutputs", f.s.LogOutputs(f.ctx, c.ID, []metadata.ModelOutput{{LoggedModel: lm.LMID, Step: 3}}), nil)
		f.wantErr("LogOutputs again", f.s.LogOutputs(f.ctx, c.ID, []metadata.ModelOutput{{LoggedModel: lm.LMID, Step: 9}}), nil)

		io := f.runData(c.ID).IO
		if len(io.Datasets) != 2 || io.Datasets[0].Dataset != train || fmt.Sprint(io.Datasets[0].Tags) != "[{mlflow.data.context training}]" ||
			io.Datasets[1].Dataset.Name != "eval" {
			f.Errorf("dataset inputs: %+v", io.Datasets)
		}
		if len(io.ModelInputs) != 1 || io.ModelInputs[0] != lm.LMID || len(io.Outputs) != 1 || io.Outputs[0] != (metadata.ModelOutput{LoggedModel: lm.LMID, Step: 3}) {
			f.Errorf("model inputs %v, outputs %v", io.ModelInputs, io.Outputs)
		}
		if io := f.runData(c2.ID).IO; len(io.Datasets) != 1 || io.Datasets[0].Dataset.Profile != `{"rows":6}` {
			f.Errorf("second run's inputs: %+v", io.Datasets)
		}
		sums, err := f.s.SearchDatasets(f.ctx, []uint64{m.ID})
		var got []string
		for _, d := range sums {
			got = append(got, d.Name+"@"+d.Digest+":"+d.Context)
		}
		if err != nil || !slices.Equal(got, []string{"eval@e35a:eval", "train@f9e2:eval", "train@f9e2:training"}) {
			f.Errorf("SearchDatasets: %v, %v", got, err)
		}
		if empty := f.runData(f.candidate(m, metadata.Candidate{}).ID).IO; empty.Datasets == nil || len(empty.Datasets)+len(empty.ModelInputs)+len(empty.Outputs) != 0 {
			f.Errorf("a run without inputs: %+v", empty)
		}

		foreign := f.loggedModel(f.model(q.ID, "o", ""), metadata.LoggedModel{})
		f.wantErr("model input of another project", f.s.LogInputs(f.ctx, c.ID, nil, []metadata.LMID{foreign.LMID}), metadata.ErrNotFound)
		f.wantErr("output of an unknown logged model", f.s.LogOutputs(f.ctx, c.ID, []metadata.ModelOutput{{LoggedModel: metadata.LMID{7}}}), metadata.ErrNotFound)
		for name, d := range map[string]metadata.Dataset{
			"no digest":   {Name: "x", SourceType: "code", Source: "{}"},
			"long schema": {Name: "x", Digest: "d", SourceType: "code", Source: "{}", Schema: strings.Repeat("s", metadata.MaxDatasetSchemaLen+1)},
			"long digest": {Name: "x", Digest: strings.Repeat("d", 37), SourceType: "code", Source: "{}"},
		} {
			f.wantErr(name, f.s.LogInputs(f.ctx, c.ID, []metadata.DatasetInput{{Dataset: d}}, nil), metadata.ErrInvalid)
		}
		f.wantErr("unknown run", f.s.LogInputs(f.ctx, 99999, nil, nil), metadata.ErrNotFound)
		_, err = f.s.SearchDatasets(f.ctx, nil)
		f.wantErr("SearchDatasets of nothing", err, metadata.ErrInvalid)
	}},
}
