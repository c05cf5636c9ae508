package storetest

import (
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

var projectTests = []test{
	{"IDsAndLookup", func(f *fx) {
		a, b, a2, tv := f.project("a"), f.project("b"), f.project("a"), f.project("team/vision")
		if a.ID != 1 || b.ID != 2 || a2.ID != 1 || tv.ID != 3 {
			f.Errorf("project ids %d %d %d %d, want 1 2 1 3", a.ID, b.ID, a2.ID, tv.ID)
		}
		if a.CreatedAt.IsZero() || !a2.CreatedAt.Equal(a.CreatedAt) {
			f.Errorf("CreatedAt %v then %v", a.CreatedAt, a2.CreatedAt)
		}
		got, err := f.s.Project(f.ctx, metadata.ProjectRef{ID: 3})
		if err != nil || got.Path != "team/vision" {
			f.Errorf("Project(ID 3) = %+v, %v", got, err)
		}
		got, err = f.s.Project(f.ctx, metadata.ProjectRef{Path: "b"})
		if err != nil || got.ID != 2 {
			f.Errorf("Project(b) = %+v, %v", got, err)
		}
		_, err = f.s.Project(f.ctx, metadata.ProjectRef{ID: 99})
		f.wantErr("Project(99)", err, metadata.ErrNotFound)
		_, err = f.s.Project(f.ctx, metadata.ProjectRef{Path: "nope"})
		f.wantErr("Project(nope)", err, metadata.ErrNotFound)
		_, err = f.s.Project(f.ctx, metadata.ProjectRef{})
		f.wantErr("Project(empty ref)", err, metadata.ErrInvalid)
		_, err = f.s.Project(f.ctx, metadata.ProjectRef{ID: 1, Path: "a"})
		f.wantErr("Project(two selectors)", err, metadata.ErrInvalid)
	}},
	{"PathValidation", func(f *fx) {
		for _, p := range []string{"", "/a", "a/", "a//b", "a b", "a@b", "ä", strings.Repeat("a", 256),
			// A URL would read these as a project id, or as nothing valid: no project may have them as its path.
			"0", "5", "007", "99999999999999999999", "-a", "-1", "-"} {
			_, err := f.s.EnsureProject(f.ctx, p)
			f.wantErr("EnsureProject("+p+")", err, metadata.ErrInvalid)
		}
		for _, p := range []string{"a", "A-b_c.d/e", "x/y/z", strings.Repeat("a", 255), "a/0", "team/-x", "0a", "5x", "1.0"} {
			_, err := f.s.EnsureProject(f.ctx, p)
			f.wantErr("EnsureProject("+p+")", err, nil)
		}
	}},
}

var modelTests = []test{
	{"ListProjectsInIDOrder", func(f *fx) {
		a, b := f.project("b/first"), f.project("a/second")
		ps, err := f.s.ListProjects(f.ctx, 0)
		if err != nil || len(ps) != 2 || ps[0].ID != a.ID || ps[1].ID != b.ID || ps[1].Path != "a/second" {
			f.Fatalf("ListProjects: %+v, %v", ps, err)
		}
		if ps, err := f.s.ListProjects(f.ctx, 1); err != nil || len(ps) != 1 {
			f.Fatalf("ListProjects limit 1: %d, %v", len(ps), err)
		}
	}},
	{"PurgeFreesNamesButNeverRuns", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "", "Churn")
		if err := f.s.PurgeModel(f.ctx, m.ID); err != nil {
			f.Fatal(err)
		}
		_, err := f.s.Model(f.ctx, metadata.ModelRef{ID: m.ID})
		f.wantErr("purged model", err, metadata.ErrNotFound)
		again := f.model(p.ID, "", "Churn")
		if again.Name != m.Name || again.IID <= m.IID {
			f.Errorf("after a purge: %+v, want the same name and a new iid above %d", again, m.IID)
		}
		f.candidate(again, metadata.Candidate{})
		f.wantErr("model with runs", f.s.PurgeModel(f.ctx, again.ID), metadata.ErrConflict)
		f.wantErr("unknown model", f.s.PurgeModel(f.ctx, 9999), metadata.ErrNotFound)
	}},
	{"DefaultModelHasIIDZero", func(f *fx) {
		p := f.project("p")
		taken := f.model(p.ID, "default", "default slug taken") // a user model may own the slug
		d, err := f.s.EnsureDefaultModel(f.ctx, p.ID)
		if err != nil {
			f.Fatal(err)
		}
		if d.IID != 0 || d.DisplayName != "Default" || d.Name == taken.Name || d.ID == 0 {
			f.Errorf("default model %+v", d)
		}
		again, err := f.s.EnsureDefaultModel(f.ctx, p.ID)
		if err != nil || again.ID != d.ID {
			f.Errorf("second call: %+v, %v", again, err)
		}
		// The default model does not use up an iid.
		if m := f.model(p.ID, "next", ""); m.IID != 2 {
			f.Errorf("iid after the default model: %d, want 2", m.IID)
		}
		got, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, DisplayName: "Default"})
		if err != nil || got.ID != d.ID {
			f.Errorf("lookup by display name: %+v, %v", got, err)
		}
		_, err = f.s.EnsureDefaultModel(f.ctx, 999)
		f.wantErr("unknown project", err, metadata.ErrNotFound)
		q := f.project("q")
		f.model(q.ID, "", "Default")
		_, err = f.s.EnsureDefaultModel(f.ctx, q.ID)
		f.wantErr("display name taken", err, metadata.ErrConflict)
	}},
	{"IIDsInCreationOrder", func(f *fx) {
		p1, p2 := f.project("p1"), f.project("p2")
		ids := map[uint64]bool{}
		for i, name := range []string{"a", "b", "c"} {
			m := f.model(p1.ID, name, "")
			if m.IID != int64(i+1) || m.Project != p1.ID || ids[m.ID] || m.ID == 0 {
				f.Errorf("model %q: %+v, want iid %d and a fresh id", name, m, i+1)
			}
			ids[m.ID] = true
			if m.CreatedAt.IsZero() || !m.UpdatedAt.Equal(m.CreatedAt) {
				f.Errorf("model %q times %v %v", name, m.CreatedAt, m.UpdatedAt)
			}
		}
		if m := f.model(p2.ID, "a", ""); m.IID != 1 || ids[m.ID] {
			f.Errorf("first model of p2: iid %d id %d, want iid 1 and a fresh id", m.IID, m.ID)
		}
		// A failed create consumes nothing visible: the next model still follows.
		err := f.s.CreateModel(f.ctx, &metadata.Model{Project: p1.ID, Name: "a"})
		f.wantErr("duplicate", err, metadata.ErrExists)
		if m := f.model(p1.ID, "d", ""); m.IID <= 3 {
			f.Errorf("iid after a failed create = %d, want > 3", m.IID)
		}
	}},
	{"Uniqueness", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		f.model(p.ID, "fraud", "Fraud")
		err := f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, Name: "fraud", DisplayName: "Other"})
		f.wantErr("same name", err, metadata.ErrExists)
		err = f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, Name: "other", DisplayName: "Fraud"})
		f.wantErr("same display name", err, metadata.ErrExists)
		err = f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, DisplayName: "Fraud"})
		f.wantErr("same display name, derived name", err, metadata.ErrExists)
		f.model(q.ID, "fraud", "Fraud") // another project
		f.model(p.ID, "FRAUD", "")      // names are case-sensitive
		// A deleted model keeps its names.
		del := &metadata.Model{Project: p.ID, Name: "gone", Lifecycle: metadata.Deleted}
		if err := f.s.CreateModel(f.ctx, del); err != nil || del.Lifecycle != metadata.Deleted {
			f.Fatalf("create deleted model: %v %+v", err, del)
		}
		err = f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, Name: "gone", DisplayName: "x"})
		f.wantErr("name of a deleted model", err, metadata.ErrExists)
	}},
	{"SlugSuffixing", func(f *fx) {
		p := f.project("p")
		for _, tc := range []struct{ display, name string }{
			{"My Experiment", "my_experiment"},
			{"my experiment", "my_experiment_2"},
			{"MY EXPERIMENT!", "my_experiment_3"},
			{"/Users/ana/Churn v2", "users_ana_churn_v2"},
			{"ml_experiment_5", "x_ml_experiment_5"},
			{"!!!", "model"},
			{"???", "model_2"},
			{"ml experiment", "ml_experiment"},
			{"ml experiment!", "x_ml_experiment_2"}, // ml_experiment_2 is the reserved legacy form
			{"Ünïcode", "n_code"},
		} {
			m := &metadata.Model{Project: p.ID, DisplayName: tc.display}
			if err := f.s.CreateModel(f.ctx, m); err != nil {
				f.Errorf("CreateModel(%q): %v", tc.display, err)
				continue
			}
			if m.Name != tc.name || m.DisplayName != tc.display {
				f.Errorf("CreateModel(%q): name %q display %q, want name %q", tc.display, m.Name, m.DisplayName, tc.name)
			}
		}
		long := f.model(p.ID, "", strings.Repeat("x", 255))
		long2 := f.model(p.ID, "", strings.Repeat("x", 254)+"X")
		if len(long.Name) != 255 || len(long2.Name) > 255 || !strings.HasSuffix(long2.Name, "_2") {
			f.Errorf("long slugs %q %q", long.Name, long2.Name)
		}
		if m := f.model(p.ID, "given/name", ""); m.DisplayName != "given/name" {
			f.Errorf("display name defaults to name: got %q", m.DisplayName)
		}
	}},
	{"Validation", func(f *fx) {
		p := f.project("p")
		bad := []metadata.Model{
			{Project: p.ID},
			{Project: p.ID, Name: "ml_experiment_3"},
			{Project: p.ID, Name: "a@b"},
			{Project: p.ID, Name: "-x"},
			{Project: p.ID, Name: "a//b"},
			{Project: p.ID, Name: "a/"},
			{Project: p.ID, Name: "a b"},
			{Project: p.ID, Name: strings.Repeat("a", 256)},
			{Project: p.ID, DisplayName: "tab\there"},
			{Project: p.ID, DisplayName: strings.Repeat("é", 256)},
			{Project: p.ID, Name: "ok", Description: strings.Repeat("d", metadata.MaxDescriptionLen+1)},
			{Project: p.ID, Name: "ok", Tags: []metadata.Tag{{Key: "", Value: "v"}}},
			{Project: p.ID, Name: "ok", Tags: []metadata.Tag{{Key: "k", Value: strings.Repeat("v", metadata.MaxTagValueLen+1)}}},
		}
		for _, m := range bad {
			f.wantErr("CreateModel("+m.Name+"|"+m.DisplayName[:min(len(m.DisplayName), 10)]+")", f.s.CreateModel(f.ctx, &m), metadata.ErrInvalid)
		}
		err := f.s.CreateModel(f.ctx, &metadata.Model{Project: 99, Name: "x"})
		f.wantErr("unknown project", err, metadata.ErrNotFound)
		ok := &metadata.Model{Project: p.ID, Name: "Fraud/XGB+1.x_y-z", DisplayName: strings.Repeat("é", 255),
			Tags: []metadata.Tag{{Key: "k", Value: "v"}}, Description: "d"}
		if err := f.s.CreateModel(f.ctx, ok); err != nil {
			f.Errorf("valid model: %v", err)
		}
		got, err := f.s.Model(f.ctx, metadata.ModelRef{ID: ok.ID})
		if err != nil || got.Description != "d" || len(got.Tags) != 1 || got.Tags[0].Value != "v" {
			f.Errorf("stored model %+v, %v", got, err)
		}
	}},
	{"Lookup", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "fraud", "Fraud Detection")
		f.model(p.ID, "other", "")
		for _, ref := range []metadata.ModelRef{
			{ID: m.ID}, {ID: m.ID, Project: p.ID}, {Project: p.ID, IID: 1},
			{Project: p.ID, Name: "fraud"}, {Project: p.ID, DisplayName: "Fraud Detection"},
		} {
			got, err := f.s.Model(f.ctx, ref)
			if err != nil || got.ID != m.ID || got.Name != "fraud" || !got.CreatedAt.Equal(m.CreatedAt) {
				f.Errorf("Model(%+v) = %+v, %v", ref, got, err)
			}
		}
		for _, ref := range []metadata.ModelRef{
			{ID: m.ID, Project: q.ID}, {ID: 999}, {Project: p.ID, IID: 3}, {Project: q.ID, IID: 1},
			{Project: p.ID, Name: "Fraud"}, {Project: p.ID, DisplayName: "fraud"},
		} {
			_, err := f.s.Model(f.ctx, ref)
			f.wantErr("Model(missing)", err, metadata.ErrNotFound)
		}
		for _, ref := range []metadata.ModelRef{{}, {Project: p.ID}, {IID: 1}, {Project: p.ID, IID: 1, Name: "fraud"}} {
			_, err := f.s.Model(f.ctx, ref)
			f.wantErr("Model(bad ref)", err, metadata.ErrInvalid)
		}
	}},
	{"ListPaging", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		for _, n := range []string{"e", "d", "c", "b", "a"} {
			f.model(p.ID, n, "")
		}
		f.model(q.ID, "x", "")
		all, pages := pageAll(f, 2, func(pg metadata.Page) ([]*metadata.Model, string, error) {
			return f.s.ListModels(f.ctx, p.ID, pg)
		})
		var names []string
		for i, m := range all {
			names = append(names, m.Name)
			if m.IID != int64(i+1) {
				f.Errorf("item %d has iid %d", i, m.IID)
			}
		}
		if strings.Join(names, ",") != "e,d,c,b,a" || pages != 3 {
			f.Errorf("pages %d of names %v, want 3 pages of e,d,c,b,a (iid order)", pages, names)
		}
		one, next, err := f.s.ListModels(f.ctx, p.ID, metadata.Page{})
		if err != nil || len(one) != 5 || next != "" {
			f.Errorf("default page: %d models, token %q, %v", len(one), next, err)
		}
		_, _, err = f.s.ListModels(f.ctx, 99, metadata.Page{})
		f.wantErr("ListModels(unknown project)", err, metadata.ErrNotFound)
	}},
}
