// Package storetest is the metadata.Store conformance suite. An implementation runs it from its own tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) metadata.Store { return newEmptyStore(t) })
//	}
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

// groups is the contract, in the order Run runs it.
var groups = []group{
	{"Projects", projectTests},
	{"Models", modelTests},
	{"ModelUpdates", modelUpdateTests},
	{"Candidates", candidateTests},
	{"CandidateUpdates", candidateUpdateTests},
	{"Search", searchTests},
	{"RunData", runDataTests},
	{"BulkReads", bulkTests},
	{"Versions", versionTests},
	{"VersionUpdates", versionUpdateTests},
	{"Aliases", aliasTests},
	{"Files", fileTests},
	{"FileBackends", backendTests},
	{"Paging", pagingTests},
	{"Tokens", tokenTests},
	{"Transactions", transactionTests},
	{"Concurrency", concurrencyTests},
	{"LoggedModels", loggedModelTests},
	{"Import", importTests},
	{"Settings", settingsTests},
}

// Run runs the Store contract. newStore must return a new, empty store on every call; Run closes it when
// the subtest ends and fails if Close fails. Subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) metadata.Store) {
	for _, g := range groups {
		runGroup(t, g.name, g.tests, newStore)
	}
}

// Groups returns the names of the contract's groups, in the order Run runs them.
func Groups() []string {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.name
	}
	return names
}

// RunGroups runs the named groups of the contract (see Groups), as Run runs all of them: for a store that
// implements part of the contract so far. An unknown name fails the test.
func RunGroups(t *testing.T, newStore func(t *testing.T) metadata.Store, names ...string) {
	for _, name := range names {
		i := slices.IndexFunc(groups, func(g group) bool { return g.name == name })
		if i < 0 {
			t.Errorf("storetest: no group %q; groups are %v", name, Groups())
			continue
		}
		runGroup(t, name, groups[i].tests, newStore)
	}
}

func runGroup(t *testing.T, name string, tests []test, newStore func(t *testing.T) metadata.Store) {
	t.Run(name, func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s := newStore(t)
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				tc.fn(&fx{T: t, s: s, ctx: t.Context()})
			})
		}
	})
}

type group struct {
	name  string
	tests []test
}

type test struct {
	name string
	fn   func(f *fx)
}

// fx is one subtest's fixture: the store and helpers that fail the test on unexpected errors.
type fx struct {
	*testing.T
	s   metadata.Store
	ctx context.Context
}

func (f *fx) project(path string) *metadata.Project {
	f.Helper()
	p, err := f.s.EnsureProject(f.ctx, path)
	if err != nil {
		f.Fatalf("EnsureProject(%q): %v", path, err)
	}
	return p
}

func (f *fx) model(project int64, name, display string) *metadata.Model {
	f.Helper()
	m := &metadata.Model{Project: project, Name: name, DisplayName: display}
	if err := f.s.CreateModel(f.ctx, m); err != nil {
		f.Fatalf("CreateModel(%q, %q): %v", name, display, err)
	}
	return m
}

func (f *fx) candidate(m *metadata.Model, c metadata.Candidate, tags ...metadata.Tag) *metadata.Candidate {
	f.Helper()
	c.ModelID = m.ID
	if err := f.s.CreateCandidate(f.ctx, &c, tags); err != nil {
		f.Fatalf("CreateCandidate: %v", err)
	}
	return &c
}

func (f *fx) version(m *metadata.Model, c *metadata.Candidate, semver string) *metadata.Version {
	f.Helper()
	v := &metadata.Version{ModelID: m.ID, CandidateID: c.ID, Semver: semver}
	if err := f.s.CreateVersion(f.ctx, v); err != nil {
		f.Fatalf("CreateVersion(%q): %v", semver, err)
	}
	return v
}

func (f *fx) commit(candID uint64, path, content string, replace bool) (*metadata.File, error) {
	row := &metadata.File{OwnerID: candID, Path: path, Size: int64(len(content)), SHA256: sha(content),
		ContentType: "text/plain", BlobKey: "c/" + path + "/" + content}
	return f.s.CommitFile(f.ctx, row, replace)
}

func (f *fx) mustCommit(candID uint64, path string) *metadata.File {
	f.Helper()
	if _, err := f.commit(candID, path, "x", false); err != nil {
		f.Fatalf("CommitFile(%q): %v", path, err)
	}
	row, err := f.s.File(f.ctx, candID, path)
	if err != nil {
		f.Fatalf("File(%q): %v", path, err)
	}
	return row
}

func (f *fx) log(candID uint64, params []metadata.Param, metrics []metadata.Metric, tags []metadata.Tag) {
	f.Helper()
	if err := f.s.LogBatch(f.ctx, candID, params, metrics, tags); err != nil {
		f.Fatalf("LogBatch: %v", err)
	}
}

func (f *fx) runData(candID uint64) *metadata.RunData {
	f.Helper()
	rd, err := f.s.RunData(f.ctx, candID)
	if err != nil {
		f.Fatalf("RunData: %v", err)
	}
	return rd
}

// wantErr fails unless errors.Is(err, target); a nil target demands success.
func (f *fx) wantErr(what string, err, target error) {
	f.Helper()
	if target == nil && err != nil {
		f.Errorf("%s: unexpected error %v", what, err)
	} else if target != nil && !errors.Is(err, target) {
		f.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// pageAll collects every page of a listing, checking that only the last page has no token and that no page
// is larger than limit.
func pageAll[T any](f *fx, limit int, list func(metadata.Page) ([]T, string, error)) (all []T, pages int) {
	f.Helper()
	p := metadata.Page{Limit: limit}
	for {
		items, next, err := list(p)
		if err != nil {
			f.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		if limit > 0 && len(items) > limit {
			f.Fatalf("page %d has %d items, limit %d", pages, len(items), limit)
		}
		if next != "" && len(items) == 0 {
			f.Fatalf("page %d is empty but has a next token", pages)
		}
		all = append(all, items...)
		if next == "" {
			return all, pages
		}
		if pages > 10000 {
			f.Fatal("paging does not end")
		}
		p.Token = next
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
