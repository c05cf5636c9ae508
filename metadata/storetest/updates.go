package storetest

import (
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

func ptr[T any](v T) *T { return &v }

func (f *fx) getModel(id uint64) *metadata.Model {
	f.Helper()
	m, err := f.s.Model(f.ctx, metadata.ModelRef{ID: id})
	if err != nil {
		f.Fatalf("Model(%d): %v", id, err)
	}
	return m
}

func (f *fx) getCandidate(id uint64) *metadata.Candidate {
	f.Helper()
	c, err := f.s.Candidate(f.ctx, metadata.CandidateRef{ID: id})
	if err != nil {
		f.Fatalf("Candidate(%d): %v", id, err)
	}
	return c
}

func (f *fx) updateModel(id uint64, u metadata.ModelUpdate) *metadata.Model {
	f.Helper()
	m, err := f.s.UpdateModel(f.ctx, id, u)
	if err != nil {
		f.Fatalf("UpdateModel(%d, %+v): %v", id, u, err)
	}
	return m
}

func (f *fx) updateCandidate(id uint64, u metadata.CandidateUpdate) *metadata.Candidate {
	f.Helper()
	c, err := f.s.UpdateCandidate(f.ctx, id, u)
	if err != nil {
		f.Fatalf("UpdateCandidate(%d, %+v): %v", id, u, err)
	}
	return c
}

func tagString(tags []metadata.Tag) string {
	var parts []string
	for _, t := range tags {
		parts = append(parts, t.Key+"="+t.Value)
	}
	return strings.Join(parts, ",")
}

var modelUpdateTests = []test{
	{"Rename", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "", "Fraud Detection")
		f.model(p.ID, "taken", "Taken")
		gone := &metadata.Model{Project: p.ID, Name: "gone", DisplayName: "Gone", Lifecycle: metadata.Deleted}
		if err := f.s.CreateModel(f.ctx, gone); err != nil {
			f.Fatal(err)
		}
		f.model(q.ID, "other", "Elsewhere")

		got := f.updateModel(m.ID, metadata.ModelUpdate{DisplayName: ptr("Fraud v2")})
		if got.DisplayName != "Fraud v2" || got.Name != "fraud_detection" || got.IID != m.IID || got.UpdatedAt.Before(m.UpdatedAt) {
			f.Errorf("renamed model %+v", got)
		}
		if byDisplay, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, DisplayName: "Fraud v2"}); err != nil || byDisplay.ID != m.ID {
			f.Errorf("Model(new display name) = %+v, %v", byDisplay, err)
		}
		_, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, DisplayName: "Fraud Detection"})
		f.wantErr("Model(old display name)", err, metadata.ErrNotFound)
		if bySlug, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "fraud_detection"}); err != nil || bySlug.ID != m.ID {
			f.Errorf("Model(slug) after rename = %+v, %v", bySlug, err)
		}
		// The old display name is free again.
		f.model(p.ID, "", "Fraud Detection")

		for _, display := range []string{"Taken", "Gone", "Fraud Detection"} {
			_, err = f.s.UpdateModel(f.ctx, m.ID, metadata.ModelUpdate{DisplayName: ptr(display)})
			f.wantErr("rename to "+display, err, metadata.ErrExists)
		}
		f.updateModel(m.ID, metadata.ModelUpdate{DisplayName: ptr("Elsewhere")}) // other project: free
		f.updateModel(m.ID, metadata.ModelUpdate{DisplayName: ptr("Elsewhere")}) // its own name: no-op
		for _, display := range []string{"", "tab\there", strings.Repeat("é", 256)} {
			_, err = f.s.UpdateModel(f.ctx, m.ID, metadata.ModelUpdate{DisplayName: ptr(display)})
			f.wantErr(fmt.Sprintf("rename to %.10q", display), err, metadata.ErrInvalid)
		}
		if got := f.getModel(m.ID); got.DisplayName != "Elsewhere" {
			f.Errorf("display name after failed renames %q", got.DisplayName)
		}
		_, err = f.s.UpdateModel(f.ctx, 999, metadata.ModelUpdate{Description: ptr("d")})
		f.wantErr("UpdateModel(unknown)", err, metadata.ErrNotFound)
	}},
	{"DescriptionTagsRegistry", func(f *fx) {
		p := f.project("p")
		m := &metadata.Model{Project: p.ID, Name: "m", Tags: []metadata.Tag{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}}
		if err := f.s.CreateModel(f.ctx, m); err != nil {
			f.Fatal(err)
		}
		got := f.updateModel(m.ID, metadata.ModelUpdate{
			Description: ptr("about"),
			SetTags:     []metadata.Tag{{Key: "b", Value: "20"}, {Key: "c", Value: "3"}},
			DeleteTags:  []string{"a", "absent"},
			InRegistry:  ptr(true),
		})
		stored := f.getModel(m.ID)
		for _, x := range []*metadata.Model{got, stored} {
			if x.Description != "about" || tagString(x.Tags) != "b=20,c=3" || !x.InRegistry || x.Name != "m" {
				f.Errorf("updated model %+v", x)
			}
		}
		// Deleting and setting one key in the same update: the set wins.
		got = f.updateModel(m.ID, metadata.ModelUpdate{DeleteTags: []string{"c"}, SetTags: []metadata.Tag{{Key: "c", Value: "30"}}, InRegistry: ptr(false)})
		if tagString(got.Tags) != "b=20,c=30" || got.InRegistry || got.Description != "about" {
			f.Errorf("second update %+v", got)
		}
		got = f.updateModel(m.ID, metadata.ModelUpdate{Description: ptr("")})
		if got.Description != "" || tagString(got.Tags) != "b=20,c=30" {
			f.Errorf("description cleared: %+v", got)
		}
		ok := metadata.ModelUpdate{SetTags: []metadata.Tag{{Key: strings.Repeat("k", metadata.MaxTagKeyLen), Value: strings.Repeat("v", metadata.MaxTagValueLen)}}}
		f.updateModel(m.ID, ok)
		for name, u := range map[string]metadata.ModelUpdate{
			"long tag key":      {SetTags: []metadata.Tag{{Key: strings.Repeat("k", metadata.MaxTagKeyLen+1)}}},
			"long tag value":    {SetTags: []metadata.Tag{{Key: "k", Value: strings.Repeat("v", metadata.MaxTagValueLen+1)}}},
			"empty tag key":     {SetTags: []metadata.Tag{{Key: "", Value: "v"}}},
			"long delete key":   {DeleteTags: []string{strings.Repeat("k", metadata.MaxTagKeyLen+1)}},
			"long description":  {Description: ptr(strings.Repeat("d", metadata.MaxDescriptionLen+1))},
			"unknown lifecycle": {Lifecycle: ptr(metadata.Lifecycle(7))},
		} {
			_, err := f.s.UpdateModel(f.ctx, m.ID, u)
			f.wantErr(name, err, metadata.ErrInvalid)
		}
		if got := f.getModel(m.ID); len(got.Tags) != 3 || got.Description != "" {
			f.Errorf("model after refused updates: %+v", got)
		}
	}},
	{"LifecycleCascade", func(f *fx) {
		p := f.project("p")
		m, other := f.model(p.ID, "m", ""), f.model(p.ID, "other", "")
		c1 := f.candidate(m, metadata.Candidate{})
		c2 := f.candidate(m, metadata.Candidate{Lifecycle: metadata.Deleted}) // deleted on its own
		c3 := f.candidate(m, metadata.Candidate{})
		cx := f.candidate(other, metadata.Candidate{})
		state := func() string {
			var s []string
			for _, c := range []*metadata.Candidate{c1, c2, c3, cx} {
				got := f.getCandidate(c.ID)
				s = append(s, fmt.Sprintf("%s/%t", got.Lifecycle, got.DeletedWithModel))
			}
			return strings.Join(s, " ")
		}
		del, act := ptr(metadata.Deleted), ptr(metadata.Active)

		if got := f.updateModel(m.ID, metadata.ModelUpdate{Lifecycle: del}); got.Lifecycle != metadata.Deleted {
			f.Errorf("model lifecycle %v", got.Lifecycle)
		}
		if s := state(); s != "deleted/true deleted/false deleted/true active/false" {
			f.Errorf("after model delete: %s", s)
		}
		f.updateModel(m.ID, metadata.ModelUpdate{Lifecycle: del}) // already deleted: candidates untouched
		if s := state(); s != "deleted/true deleted/false deleted/true active/false" {
			f.Errorf("after second model delete: %s", s)
		}
		f.updateModel(m.ID, metadata.ModelUpdate{Lifecycle: act})
		if s := state(); s != "active/false deleted/false active/false active/false" {
			f.Errorf("after model restore: %s", s)
		}

		// Explicit candidate decisions made while the model is deleted outlive the model's restore.
		f.updateModel(m.ID, metadata.ModelUpdate{Lifecycle: del})
		f.updateCandidate(c1.ID, metadata.CandidateUpdate{Lifecycle: act}) // restored on its own
		f.updateCandidate(c1.ID, metadata.CandidateUpdate{Lifecycle: del}) // then deleted on its own
		f.updateCandidate(c3.ID, metadata.CandidateUpdate{Lifecycle: act})
		if s := state(); s != "deleted/false deleted/false active/false active/false" {
			f.Errorf("after candidate decisions: %s", s)
		}
		f.updateModel(m.ID, metadata.ModelUpdate{Lifecycle: act})
		if s := state(); s != "deleted/false deleted/false active/false active/false" {
			f.Errorf("after model restore: %s", s)
		}
		if got := f.getModel(m.ID); got.Lifecycle != metadata.Active {
			f.Errorf("model lifecycle %v", got.Lifecycle)
		}
	}},
}

var candidateUpdateTests = []test{
	{"Fields", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{Name: "run", StartTime: 100})
		got := f.updateCandidate(c.ID, metadata.CandidateUpdate{Name: ptr("renamed"), Status: ptr(metadata.Finished), EndTime: ptr(int64(200))})
		stored := f.getCandidate(c.ID)
		for _, x := range []*metadata.Candidate{got, stored} {
			if x.Name != "renamed" || x.Status != metadata.Finished || x.EndTime != 200 || x.StartTime != 100 ||
				x.EID != c.EID || x.IID != c.IID || x.Lifecycle != metadata.Active {
				f.Errorf("updated candidate %+v", x)
			}
		}
		got = f.updateCandidate(c.ID, metadata.CandidateUpdate{Status: ptr(metadata.Killed)})
		if got.Name != "renamed" || got.Status != metadata.Killed || got.EndTime != 200 {
			f.Errorf("partial update %+v", got)
		}
		got = f.updateCandidate(c.ID, metadata.CandidateUpdate{Lifecycle: ptr(metadata.Deleted)})
		if got.Lifecycle != metadata.Deleted || got.DeletedWithModel {
			f.Errorf("deleted candidate %+v", got)
		}
		for name, u := range map[string]metadata.CandidateUpdate{
			"long name":         {Name: ptr(strings.Repeat("n", metadata.MaxCandidateName+1)), Status: ptr(metadata.Running)},
			"unknown status":    {Status: ptr(metadata.RunStatus(9))},
			"unknown lifecycle": {Lifecycle: ptr(metadata.Lifecycle(7))},
		} {
			_, err := f.s.UpdateCandidate(f.ctx, c.ID, u)
			f.wantErr(name, err, metadata.ErrInvalid)
		}
		if x := f.getCandidate(c.ID); x.Status != metadata.Killed || x.Name != "renamed" || x.Lifecycle != metadata.Deleted {
			f.Errorf("candidate after refused updates %+v", x)
		}
		_, err := f.s.UpdateCandidate(f.ctx, 999, metadata.CandidateUpdate{Name: ptr("x")})
		f.wantErr("UpdateCandidate(unknown)", err, metadata.ErrNotFound)
		// Still listed: ListCandidates returns every lifecycle.
		list, _, err := f.s.ListCandidates(f.ctx, m.ID, metadata.Page{})
		if err != nil || len(list) != 1 || list[0].Name != "renamed" {
			f.Errorf("ListCandidates = %+v, %v", list, err)
		}
	}},
	{"DeleteTag", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{}, metadata.Tag{Key: "a", Value: "1"}, metadata.Tag{Key: "empty", Value: ""})
		other := f.candidate(m, metadata.Candidate{}, metadata.Tag{Key: "a", Value: "x"})
		f.wantErr("DeleteTag(a)", f.s.DeleteTag(f.ctx, c.ID, "a"), nil)
		f.wantErr("DeleteTag(empty value)", f.s.DeleteTag(f.ctx, c.ID, "empty"), nil)
		if tags := f.runData(c.ID).Tags; len(tags) != 0 {
			f.Errorf("tags after delete %+v", tags)
		}
		if tags := f.runData(other.ID).Tags; tagString(tags) != "a=x" {
			f.Errorf("other candidate's tags %+v", tags)
		}
		f.wantErr("DeleteTag(a again)", f.s.DeleteTag(f.ctx, c.ID, "a"), metadata.ErrNotFound)
		f.wantErr("DeleteTag(never)", f.s.DeleteTag(f.ctx, c.ID, "never"), metadata.ErrNotFound)
		f.wantErr("DeleteTag(\"\")", f.s.DeleteTag(f.ctx, c.ID, ""), metadata.ErrNotFound)
		f.wantErr("DeleteTag(unknown candidate)", f.s.DeleteTag(f.ctx, 999, "a"), metadata.ErrNotFound)
	}},
}
