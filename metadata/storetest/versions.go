package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mlgate/mlgate/metadata"
)

var versionTests = []test{
	{"DefaultSemverBump", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		steps := []struct{ give, want string }{
			{"", "1.0.0"},
			{"", "1.1.0"},
			{"2.5.3", "2.5.3"},
			{"", "2.6.0"},
			{"3.0.0-rc.1", "3.0.0-rc.1"},
			{"", "3.1.0"}, // prerelease ignored when bumping: the default stays above everything
			{"9.9.9", "9.9.9"},
			{"10.0.0+build.7", "10.0.0+build.7"},
			{"", "10.1.0"}, // numeric, not lexical, order
			{"1.0.1", "1.0.1"},
			{"", "10.2.0"},
		}
		for i, st := range steps {
			v := f.version(m, c, st.give)
			if v.Semver != st.want || v.Seq != int64(i+1) {
				f.Errorf("step %d: semver %q seq %d, want %q seq %d", i, v.Semver, v.Seq, st.want, i+1)
			}
		}
		got, err := f.s.Model(f.ctx, metadata.ModelRef{ID: m.ID})
		if err != nil || !got.InRegistry {
			f.Errorf("model after CreateVersion: %+v, %v; want InRegistry", got, err)
		}
	}},
	{"IDsPerProjectSeqPerModel", func(f *fx) {
		p1, p2 := f.project("p1"), f.project("p2")
		a, b, x := f.model(p1.ID, "a", ""), f.model(p1.ID, "b", ""), f.model(p2.ID, "x", "")
		ca, cx := f.candidate(a, metadata.Candidate{}), f.candidate(x, metadata.Candidate{})
		va1, vb1, va2 := f.version(a, ca, ""), f.version(b, ca, ""), f.version(a, ca, "")
		vx1 := f.version(x, cx, "")
		got := fmt.Sprint(va1.ID, va1.Seq, vb1.ID, vb1.Seq, va2.ID, va2.Seq, vx1.ID, vx1.Seq)
		if got != "1 1 2 1 3 2 1 1" {
			f.Errorf("(id seq) pairs %s, want 1 1 2 1 3 2 1 1", got)
		}
		if va1.Project != p1.ID || vx1.Project != p2.ID || va1.CreatedAt.IsZero() || !va1.UpdatedAt.Equal(va1.CreatedAt) {
			f.Errorf("filled fields: %+v", va1)
		}
		err := f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: a.ID, CandidateID: ca.ID, Semver: "1.0.0"})
		f.wantErr("taken semver", err, metadata.ErrExists)
		if v := f.version(a, ca, ""); v.Seq <= va2.Seq || v.ID <= va2.ID {
			f.Errorf("after a failed create: seq %d id %d, want above %d %d", v.Seq, v.ID, va2.Seq, va2.ID)
		}
	}},
	{"Errors", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m, m2, other := f.model(p.ID, "m", ""), f.model(p.ID, "m2", ""), f.model(q.ID, "o", "")
		c, c2, co := f.candidate(m, metadata.Candidate{}), f.candidate(m2, metadata.Candidate{}), f.candidate(other, metadata.Candidate{})
		for _, sv := range []string{"v1.0.0", "1.0", "01.0.0", "1.0.0-01", "1.0.0+", "1.0.0-", "1.0.0-a..b", "1.0.0 ", "18446744073709551616.0.0", strings.Repeat("1", 256) + ".0.0"} {
			err := f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, CandidateID: c.ID, Semver: sv})
			f.wantErr("semver "+sv, err, metadata.ErrInvalid)
		}
		err := f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, CandidateID: c.ID, Subpath: "../x"})
		f.wantErr("bad subpath", err, metadata.ErrInvalid)
		err = f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: 999, CandidateID: c.ID})
		f.wantErr("unknown model", err, metadata.ErrNotFound)
		err = f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, CandidateID: 999})
		f.wantErr("unknown candidate", err, metadata.ErrNotFound)
		err = f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, CandidateID: co.ID})
		f.wantErr("candidate of another project", err, metadata.ErrNotFound)
		err = f.s.CreateVersion(f.ctx, &metadata.Version{ModelID: m.ID, Project: q.ID, CandidateID: c.ID})
		f.wantErr("model outside the given project", err, metadata.ErrNotFound)
		// A run of another model of the same project may back a version (MLflow allows it).
		v := &metadata.Version{ModelID: m.ID, CandidateID: c2.ID, Semver: "1.2.3-rc.1+b.01", Subpath: "model",
			Description: "d", Tags: []metadata.Tag{{Key: "k", Value: "v"}}, Source: "s", RunLink: "r", UserID: "u", Stage: "None"}
		if err := f.s.CreateVersion(f.ctx, v); err != nil {
			f.Fatalf("valid version: %v", err)
		}
		got, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq})
		if err != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *v) {
			f.Errorf("stored %+v, %v; want %+v", got, err, v)
		}
	}},
	{"Lookup", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		f.version(m, c, "")
		v := f.version(m, c, "2.0.0")
		for _, ref := range []metadata.VersionRef{{Project: p.ID, ID: 2}, {ModelID: m.ID, Seq: 2}, {ModelID: m.ID, Semver: "2.0.0"}, {ModelID: m.ID, Seq: 2, Project: p.ID}} {
			got, err := f.s.Version(f.ctx, ref)
			if err != nil || got.ID != v.ID || got.Semver != "2.0.0" || got.CandidateID != c.ID {
				f.Errorf("Version(%+v) = %+v, %v", ref, got, err)
			}
		}
		for _, ref := range []metadata.VersionRef{{Project: p.ID, ID: 3}, {Project: q.ID, ID: 1}, {ModelID: m.ID, Seq: 3},
			{ModelID: m.ID, Semver: "2.0.1"}, {ModelID: 999, Seq: 1}, {ModelID: m.ID, Seq: 1, Project: q.ID}} {
			_, err := f.s.Version(f.ctx, ref)
			f.wantErr(fmt.Sprintf("Version(%+v)", ref), err, metadata.ErrNotFound)
		}
		for _, ref := range []metadata.VersionRef{{}, {ID: 1}, {ModelID: m.ID}, {ModelID: m.ID, Seq: 1, Semver: "1.0.0"}} {
			_, err := f.s.Version(f.ctx, ref)
			f.wantErr(fmt.Sprintf("Version(%+v)", ref), err, metadata.ErrInvalid)
		}
	}},
	{"ListInSeqOrder", func(f *fx) {
		p := f.project("p")
		m, other := f.model(p.ID, "m", ""), f.model(p.ID, "other", "")
		c := f.candidate(m, metadata.Candidate{})
		for _, sv := range []string{"5.0.0", "1.0.0", "", "0.1.0", ""} {
			f.version(m, c, sv)
		}
		f.version(other, c, "")
		all, pages := pageAll(f, 2, func(pg metadata.Page) ([]*metadata.Version, string, error) {
			return f.s.ListVersions(f.ctx, m.ID, pg)
		})
		var got []string
		for _, v := range all {
			got = append(got, fmt.Sprint(v.Seq, ":", v.Semver))
		}
		if want := "[1:5.0.0 2:1.0.0 3:5.1.0 4:0.1.0 5:5.2.0]"; fmt.Sprint(got) != want || pages != 3 {
			f.Errorf("%d pages of %v, want 3 of %s", pages, got, want)
		}
		_, _, err := f.s.ListVersions(f.ctx, 999, metadata.Page{})
		f.wantErr("ListVersions(unknown model)", err, metadata.ErrNotFound)
	}},
	{"EnsurePackageVersion", func(f *fx) {
		p := f.project("p")
		pv, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "fraud/xgb", "1.2.0", 0)
		if err != nil || !pv.Created {
			f.Fatalf("first ensure: %+v, %v", pv, err)
		}
		m, v, c := pv.Model, pv.Version, pv.Candidate
		if m.Name != "fraud/xgb" || m.DisplayName != "fraud/xgb" || !m.InRegistry || m.Project != p.ID {
			f.Errorf("created model %+v", m)
		}
		if v.Semver != "1.2.0" || v.CandidateID != c.ID || v.ModelID != m.ID || v.Seq != 1 || v.ID != 1 {
			f.Errorf("created version %+v", v)
		}
		if c.ModelID != m.ID || c.Name != "1.2.0" || c.Status != metadata.Finished || c.IID != 1 || c.StartTime == 0 {
			f.Errorf("created candidate %+v", c)
		}
		again, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "fraud/xgb", "1.2.0", 0)
		if err != nil || again.Created || again.Version.ID != v.ID || again.Candidate.ID != c.ID || again.Model.ID != m.ID {
			f.Errorf("second ensure: %+v, %v", again, err)
		}
		next, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "fraud/xgb", "1.3.0", 0)
		if err != nil || !next.Created || next.Model.ID != m.ID || next.Candidate.ID == c.ID || next.Version.Seq != 2 {
			f.Errorf("new semver of the same model: %+v, %v", next, err)
		}
		// An existing experiment-only model is adopted into the registry.
		exp := f.model(p.ID, "churn", "Churn")
		pv, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "churn", "0.1.0", 0)
		if err != nil || pv.Model.ID != exp.ID || !pv.Model.InRegistry || pv.Model.DisplayName != "Churn" {
			f.Errorf("adopting a model: %+v, %v", pv, err)
		}
		for _, bad := range [][2]string{{"ml_experiment_3", "1.0.0"}, {"a@b", "1.0.0"}, {"ok", "1.0"}, {"ok", "candidate_1"}} {
			_, err := f.s.EnsurePackageVersion(f.ctx, p.ID, bad[0], bad[1], 0)
			f.wantErr(fmt.Sprint("ensure ", bad), err, metadata.ErrInvalid)
		}
		_, err = f.s.EnsurePackageVersion(f.ctx, 999, "x", "1.0.0", 0)
		f.wantErr("unknown project", err, metadata.ErrNotFound)
		if err := f.s.CreateModel(f.ctx, &metadata.Model{Project: p.ID, Name: "gone", Lifecycle: metadata.Deleted}); err != nil {
			f.Fatal(err)
		}
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "gone", "1.0.0", 0)
		f.wantErr("deleted model", err, metadata.ErrConflict)
		f.model(p.ID, "other_name", "taken")
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "taken", "1.0.0", 0)
		f.wantErr("name is another model's display name", err, metadata.ErrConflict)
	}},
	{"EnsurePackageVersionConcurrent", func(f *fx) {
		p := f.project("p")
		const n = 10
		results := make([]*metadata.PackageVersion, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = f.s.EnsurePackageVersion(f.ctx, p.ID, "conc", "1.0.0", 0)
			})
		}
		wg.Wait()
		created := 0
		for i := range n {
			if errs[i] != nil {
				f.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if results[i].Created {
				created++
			}
			if results[i].Version.ID != results[0].Version.ID || results[i].Candidate.ID != results[0].Candidate.ID {
				f.Errorf("goroutine %d got version %d candidate %d", i, results[i].Version.ID, results[i].Candidate.ID)
			}
		}
		cands, _, err := f.s.ListCandidates(f.ctx, results[0].Model.ID, metadata.Page{})
		vers, _, err2 := f.s.ListVersions(f.ctx, results[0].Model.ID, metadata.Page{})
		if created != 1 || len(cands) != 1 || len(vers) != 1 || err != nil || err2 != nil {
			f.Errorf("created %d times, %d candidates, %d versions (%v %v); want 1 each", created, len(cands), len(vers), err, err2)
		}
	}},
	{"ReservedOwnerIDs", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "M")
		r1, err := f.s.ReserveOwnerID(f.ctx)
		f.wantErr("ReserveOwnerID", err, nil)
		r2, err := f.s.ReserveOwnerID(f.ctx)
		f.wantErr("ReserveOwnerID", err, nil)
		// A reserved id is issued to nothing else: neither to later draws, candidates nor logged models.
		c := f.candidate(m, metadata.Candidate{})
		lm := f.loggedModel(m, metadata.LoggedModel{})
		if r1 == 0 || r2 == r1 || c.ID == r1 || c.ID == r2 || lm.ID == r1 || lm.ID == r2 {
			f.Fatalf("reserved %d and %d, then candidate %d and logged model %d", r1, r2, c.ID, lm.ID)
		}
		for _, id := range []uint64{r1, r2} {
			_, err := f.s.Candidate(f.ctx, metadata.CandidateRef{ID: id})
			f.wantErr("a reserved id before use", err, metadata.ErrNotFound)
		}
		// A package version's candidate takes the reserved id, once.
		pv, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "1.0.0", r2)
		if err != nil || !pv.Created || pv.Candidate.ID != r2 || pv.Version.CandidateID != r2 || pv.Candidate.IID == 0 {
			f.Fatalf("version with reserved id %d: %+v, %v", r2, pv, err)
		}
		got, err := f.s.Candidate(f.ctx, metadata.CandidateRef{ID: r2})
		if err != nil || got.ModelID != pv.Model.ID || got.EID.String() != pv.Candidate.EID.String() {
			f.Errorf("candidate %d: %+v, %v", r2, got, err)
		}
		again, err := f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "1.0.0", r2)
		if err != nil || again.Created || again.Candidate.ID != r2 {
			f.Errorf("ensuring the version again: %+v, %v", again, err)
		}
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "2.0.0", r2)
		f.wantErr("a reserved id already used", err, metadata.ErrExists)
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "2.0.0", c.ID)
		f.wantErr("a candidate's id", err, metadata.ErrExists)
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "2.0.0", lm.ID)
		f.wantErr("a logged model's id", err, metadata.ErrExists)
		_, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "2.0.0", 1<<40)
		f.wantErr("an id never reserved", err, metadata.ErrInvalid)
		if _, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: pv.Model.ID, Semver: "2.0.0"}); !errors.Is(err, metadata.ErrNotFound) {
			f.Errorf("a refused version exists: %v", err)
		}
		// An id reserved and never used stays unused.
		pv, err = f.s.EnsurePackageVersion(f.ctx, p.ID, "pkg", "3.0.0", 0)
		if err != nil || pv.Candidate.ID == r1 {
			f.Errorf("a fresh version after a reservation: %+v, %v", pv, err)
		}
	}},
	{"PackageVersionAppearsWithItsFirstFile", func(f *fx) {
		// A version created implicitly by an upload is created in the transaction that commits its first
		// file: when the commit fails, neither the model, the version nor the candidate exists.
		p := f.project("p")
		id, err := f.s.ReserveOwnerID(f.ctx)
		f.wantErr("ReserveOwnerID", err, nil)
		firstFile := func(path string) error {
			return f.s.Update(f.ctx, func(ctx context.Context) error {
				pv, err := f.s.EnsurePackageVersion(ctx, p.ID, "ghost", "2.0.0", id)
				if err != nil {
					return err
				}
				_, err = f.s.CommitFile(ctx, &metadata.File{OwnerID: pv.Candidate.ID, Path: path, Size: 1, SHA256: sha("x"),
					BlobKey: "c/x"}, true)
				return err
			})
		}
		f.wantErr("a first file with a bad path", firstFile("../x.bin"), metadata.ErrInvalid)
		_, err = f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "ghost"})
		f.wantErr("the model of a failed first upload", err, metadata.ErrNotFound)
		if ms, _, err := f.s.ListModels(f.ctx, p.ID, metadata.Page{}); err != nil || len(ms) != 0 {
			f.Errorf("models after a failed first upload: %d, %v", len(ms), err)
		}
		_, err = f.s.Candidate(f.ctx, metadata.CandidateRef{ID: id})
		f.wantErr("the candidate of a failed first upload", err, metadata.ErrNotFound)
		// The reservation survives the rollback: the retry commits under the same id.
		f.wantErr("the first file", firstFile("x.bin"), nil)
		m, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "ghost"})
		if err != nil || !m.InRegistry {
			f.Fatalf("model after the first file: %+v, %v", m, err)
		}
		v, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Semver: "2.0.0"})
		if err != nil || v.CandidateID != id {
			f.Fatalf("version after the first file: %+v, %v", v, err)
		}
		files, _, err := f.s.ListFiles(f.ctx, id, "", metadata.Page{})
		if err != nil || len(files) != 1 || files[0].Path != "x.bin" {
			f.Errorf("files of the version: %v, %v", files, err)
		}
	}},
}
