package storetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

var candidateTests = []test{
	{"IIDsAndDefaults", func(f *fx) {
		p1, p2 := f.project("p1"), f.project("p2")
		a, b, c := f.model(p1.ID, "a", ""), f.model(p1.ID, "b", ""), f.model(p2.ID, "c", "")
		before := time.Now().Add(-time.Second).UnixMilli()
		eids := map[metadata.EID]bool{}
		ids := map[uint64]bool{}
		for i, m := range []*metadata.Model{a, b, a} {
			cand := f.candidate(m, metadata.Candidate{})
			if cand.IID != int64(i+1) || cand.Project != p1.ID || cand.ModelID != m.ID {
				f.Errorf("candidate %d: %+v, want iid %d in project %d", i, cand, i+1, p1.ID)
			}
			if cand.EID == (metadata.EID{}) || eids[cand.EID] || ids[cand.ID] || cand.ID == 0 {
				f.Errorf("candidate %d: id %d eid %s not fresh", i, cand.ID, cand.EID)
			}
			eids[cand.EID], ids[cand.ID] = true, true
			if cand.Status != metadata.Running || cand.CreatedAt.IsZero() || cand.EndTime != 0 {
				f.Errorf("candidate %d defaults: %+v", i, cand)
			}
			if after := time.Now().Add(time.Second).UnixMilli(); cand.StartTime < before || cand.StartTime > after {
				f.Errorf("candidate %d StartTime %d not now", i, cand.StartTime)
			}
		}
		if cand := f.candidate(c, metadata.Candidate{}); cand.IID != 1 || ids[cand.ID] {
			f.Errorf("first candidate of p2: iid %d id %d", cand.IID, cand.ID)
		}
		given := f.candidate(a, metadata.Candidate{Name: "run", UserID: "ana", Status: metadata.Finished, StartTime: 1234, EndTime: 5678},
			metadata.Tag{Key: "t", Value: "1"}, metadata.Tag{Key: "t", Value: "2"})
		got, err := f.s.Candidate(f.ctx, metadata.CandidateRef{ID: given.ID})
		if err != nil || got.Name != "run" || got.UserID != "ana" || got.Status != metadata.Finished ||
			got.StartTime != 1234 || got.EndTime != 5678 || got.EID != given.EID {
			f.Errorf("stored candidate %+v, %v", got, err)
		}
		if tags := f.runData(given.ID).Tags; len(tags) != 1 || tags[0] != (metadata.Tag{Key: "t", Value: "2"}) {
			f.Errorf("creation tags %+v, want the last value of t", tags)
		}
	}},
	{"Validation", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "m", "")
		err := f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: 999}, nil)
		f.wantErr("unknown model", err, metadata.ErrNotFound)
		err = f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: m.ID, Project: q.ID}, nil)
		f.wantErr("model of another project", err, metadata.ErrNotFound)
		err = f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: m.ID, Name: strings.Repeat("n", metadata.MaxCandidateName+1)}, nil)
		f.wantErr("long name", err, metadata.ErrInvalid)
		err = f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: m.ID}, []metadata.Tag{{Key: strings.Repeat("k", 251)}})
		f.wantErr("long tag key", err, metadata.ErrInvalid)
		err = f.s.CreateCandidate(f.ctx, &metadata.Candidate{ModelID: m.ID}, []metadata.Tag{{Key: "k", Value: strings.Repeat("v", 5001)}})
		f.wantErr("long tag value", err, metadata.ErrInvalid)
		if c := f.candidate(m, metadata.Candidate{}); c.IID != 1 {
			f.Errorf("first successful candidate has iid %d", c.IID)
		}
	}},
	{"Lookup", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m := f.model(p.ID, "m", "")
		f.candidate(m, metadata.Candidate{})
		c := f.candidate(m, metadata.Candidate{Name: "second"})
		for _, ref := range []metadata.CandidateRef{{ID: c.ID}, {EID: c.EID}, {Project: p.ID, IID: 2}, {EID: c.EID, Project: p.ID}} {
			got, err := f.s.Candidate(f.ctx, ref)
			if err != nil || got.ID != c.ID || got.Name != "second" {
				f.Errorf("Candidate(%+v) = %+v, %v", ref, got, err)
			}
		}
		eid, _ := metadata.ParseEID(strings.Repeat("ab", 16))
		for _, ref := range []metadata.CandidateRef{{ID: 999}, {EID: eid}, {Project: p.ID, IID: 3}, {Project: q.ID, IID: 1}, {ID: c.ID, Project: q.ID}} {
			_, err := f.s.Candidate(f.ctx, ref)
			f.wantErr(fmt.Sprintf("Candidate(%+v)", ref), err, metadata.ErrNotFound)
		}
		for _, ref := range []metadata.CandidateRef{{}, {IID: 1}, {ID: c.ID, EID: c.EID}} {
			_, err := f.s.Candidate(f.ctx, ref)
			f.wantErr(fmt.Sprintf("Candidate(%+v)", ref), err, metadata.ErrInvalid)
		}
	}},
	{"ListNewestFirst", func(f *fx) {
		p := f.project("p")
		m, other := f.model(p.ID, "m", ""), f.model(p.ID, "other", "")
		c1 := f.candidate(m, metadata.Candidate{StartTime: 100})
		c2 := f.candidate(m, metadata.Candidate{StartTime: 300})
		c3 := f.candidate(m, metadata.Candidate{StartTime: 200})
		c4 := f.candidate(m, metadata.Candidate{StartTime: 300})
		c5 := f.candidate(m, metadata.Candidate{StartTime: -5})
		f.candidate(other, metadata.Candidate{StartTime: 250})
		want := []uint64{c4.ID, c2.ID, c3.ID, c1.ID, c5.ID} // equal start times: newest candidate first
		for _, limit := range []int{0, 1, 2, 5} {
			all, _ := pageAll(f, limit, func(pg metadata.Page) ([]*metadata.Candidate, string, error) {
				return f.s.ListCandidates(f.ctx, m.ID, pg)
			})
			var got []uint64
			for _, c := range all {
				got = append(got, c.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				f.Errorf("limit %d: order %v, want %v", limit, got, want)
			}
		}
		_, _, err := f.s.ListCandidates(f.ctx, 999, metadata.Page{})
		f.wantErr("ListCandidates(unknown model)", err, metadata.ErrNotFound)
	}},
}
