package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

var errAbort = errors.New("storetest: abort")

var transactionTests = []test{
	{"CommitsEverythingOrNothing", func(f *fx) {
		p := f.project("p")
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			if err := f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "a"}); err != nil {
				return err
			}
			return f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "b"})
		})
		f.wantErr("Update", err, nil)
		for _, n := range []string{"a", "b"} {
			if _, err := f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: n}); err != nil {
				f.Errorf("model %s after a committed Update: %v", n, err)
			}
		}

		err = f.s.Update(f.ctx, func(ctx context.Context) error {
			if err := f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "c"}); err != nil {
				return err
			}
			return errAbort
		})
		f.wantErr("Update returning an error", err, errAbort)
		_, err = f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "c"})
		f.wantErr("model c after a rolled-back Update", err, metadata.ErrNotFound)
	}},
	{"ReadsSeeTheTransactionsWrites", func(f *fx) {
		p := f.project("p")
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			m := &metadata.Model{Project: p.ID, Name: "m"}
			if err := f.s.CreateModel(ctx, m); err != nil {
				return err
			}
			c := &metadata.Candidate{ModelID: m.ID}
			if err := f.s.CreateCandidate(ctx, c, nil); err != nil {
				return err
			}
			if err := f.s.LogBatch(ctx, c.ID, []metadata.Param{{Key: "lr", Value: "0.1"}}, nil, nil); err != nil {
				return err
			}
			rd, err := f.s.RunData(ctx, c.ID)
			if err != nil {
				return err
			}
			if len(rd.Params) != 1 || rd.Params[0].Value != "0.1" {
				return fmt.Errorf("run data inside the transaction: %+v", rd)
			}
			got, err := f.s.Model(ctx, metadata.ModelRef{Project: p.ID, Name: "m"})
			if err != nil || got.ID != m.ID {
				return fmt.Errorf("model inside the transaction: %+v, %v", got, err)
			}
			return nil
		})
		f.wantErr("Update", err, nil)
	}},
	{"AFailedWriteAbortsEvenIfIgnored", func(f *fx) {
		p := f.project("p")
		f.model(p.ID, "taken", "")
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			if err := f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "fresh"}); err != nil {
				return err
			}
			_ = f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "taken"}) // ErrExists, ignored
			return nil
		})
		f.wantErr("Update after an ignored failed write", err, metadata.ErrExists)
		_, err = f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "fresh"})
		f.wantErr("model written before the failed write", err, metadata.ErrNotFound)
	}},
	{"NestedUpdateJoins", func(f *fx) {
		p := f.project("p")
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			if err := f.s.Update(ctx, func(ctx context.Context) error {
				return f.s.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "inner"})
			}); err != nil {
				return err
			}
			return errAbort
		})
		f.wantErr("outer Update", err, errAbort)
		_, err = f.s.Model(f.ctx, metadata.ModelRef{Project: p.ID, Name: "inner"})
		f.wantErr("model of a nested Update whose outer one rolled back", err, metadata.ErrNotFound)
	}},
	{"ConcurrentReadThenWrite", func(f *fx) {
		// Every writer reads the highest version and creates the next patch in one transaction: none may
		// see a version another is about to create, so the semvers and seqs come out distinct and gap-free.
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		const writers = 16
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- f.s.Update(f.ctx, func(ctx context.Context) error {
					vs, _, err := f.s.ListVersions(ctx, m.ID, metadata.Page{Limit: 1000})
					if err != nil {
						return err
					}
					highest := ""
					for _, v := range vs {
						if highest == "" || pkgtypes.CompareSemver(v.Semver, highest) > 0 {
							highest = v.Semver
						}
					}
					v := &metadata.Version{ModelID: m.ID, CandidateID: c.ID, Semver: pkgtypes.NextVersion(highest, pkgtypes.BumpPatch)}
					return f.s.CreateVersion(ctx, v)
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			f.wantErr("concurrent Update", err, nil)
		}
		vs, _, err := f.s.ListVersions(f.ctx, m.ID, metadata.Page{Limit: 1000})
		if err != nil {
			f.Fatalf("ListVersions: %v", err)
		}
		var got, want []string
		for i, v := range vs {
			got = append(got, fmt.Sprintf("%d:%s", v.Seq, v.Semver))
			want = append(want, fmt.Sprintf("%d:1.0.%d", i+1, i))
		}
		if len(vs) != writers || !slices.Equal(got, want) {
			f.Errorf("versions %v, want %v", got, want)
		}
	}},
}
