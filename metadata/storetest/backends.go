package storetest

import "github.com/mlgate/mlgate/metadata"

// backendTests cover File.Backend and SwitchFileBackend, the compare-and-swap `mlgate backends migrate`
// commits with.
var backendTests = []test{
	{"BackendRecordedAndSwitched", func(f *fx) {
		c := f.runFixture()
		// Old rows carry no backend: it must stay empty (the default backend), not be filled in.
		f.mustCommit(c.ID, "legacy")
		if got, err := f.s.File(f.ctx, c.ID, "legacy"); err != nil || got.Backend != "" {
			f.Errorf("legacy row %+v, %v: want an empty backend", got, err)
		}
		row := &metadata.File{OwnerID: c.ID, Path: "w", Size: 1, SHA256: sha("x"), BlobKey: "c/w/a", Backend: "fast"}
		if _, err := f.s.CommitFile(f.ctx, row, false); err != nil {
			f.Fatal(err)
		}
		if got, err := f.s.File(f.ctx, c.ID, "w"); err != nil || got.Backend != "fast" {
			f.Errorf("row %+v, %v: want backend fast", got, err)
		}

		f.wantErr("switch with a stale key", f.s.SwitchFileBackend(f.ctx, c.ID, "w", "c/w/old", "cold", "c/w/b"), metadata.ErrConflict)
		f.wantErr("switch of a missing row", f.s.SwitchFileBackend(f.ctx, c.ID, "nope", "c/w/a", "cold", "c/w/b"), metadata.ErrNotFound)
		f.wantErr("switch to an empty key", f.s.SwitchFileBackend(f.ctx, c.ID, "w", "c/w/a", "cold", ""), metadata.ErrInvalid)
		f.wantErr("switch of a bad path", f.s.SwitchFileBackend(f.ctx, c.ID, "../w", "c/w/a", "cold", "c/w/b"), metadata.ErrInvalid)
		if got, _ := f.s.File(f.ctx, c.ID, "w"); got == nil || got.Backend != "fast" || got.BlobKey != "c/w/a" {
			f.Errorf("failed switches changed the row: %+v", got)
		}

		f.wantErr("switch", f.s.SwitchFileBackend(f.ctx, c.ID, "w", "c/w/a", "cold", "c/w/b"), nil)
		got, err := f.s.File(f.ctx, c.ID, "w")
		if err != nil || got.Backend != "cold" || got.BlobKey != "c/w/b" || got.SHA256 != sha("x") || got.Size != 1 {
			f.Errorf("after switch: %+v, %v", got, err)
		}
		// A second identical switch sees the new key: a re-run conflicts instead of clobbering.
		f.wantErr("repeated switch", f.s.SwitchFileBackend(f.ctx, c.ID, "w", "c/w/a", "cold", "c/w/b"), metadata.ErrConflict)
	}},
}
