package storetest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

func paths(files []*metadata.File) string {
	var ps []string
	for _, f := range files {
		ps = append(ps, f.Path)
	}
	return strings.Join(ps, ",")
}

var fileTests = []test{
	{"CommitAndReplace", func(f *fx) {
		c := f.runFixture()
		replaced, err := f.commit(c.ID, "model/MLmodel", "one", false)
		if err != nil || replaced != nil {
			f.Fatalf("first commit: %+v, %v", replaced, err)
		}
		got, err := f.s.File(f.ctx, c.ID, "model/MLmodel")
		if err != nil || got.Size != 3 || got.SHA256 != sha("one") || got.BlobKey != "c/model/MLmodel/one" ||
			got.ContentType != "text/plain" || got.OwnerID != c.ID || got.CreatedAt.IsZero() {
			f.Errorf("stored row %+v, %v", got, err)
		}
		_, err = f.commit(c.ID, "model/MLmodel", "two", false)
		f.wantErr("commit over a row without replace", err, metadata.ErrConflict)
		replaced, err = f.commit(c.ID, "model/MLmodel", "three", true)
		if err != nil || replaced == nil || replaced.BlobKey != "c/model/MLmodel/one" {
			f.Errorf("replace returned %+v, %v; want the old row", replaced, err)
		}
		if got, _ := f.s.File(f.ctx, c.ID, "model/MLmodel"); got == nil || got.BlobKey != "c/model/MLmodel/three" {
			f.Errorf("after replace: %+v", got)
		}
		if replaced, err := f.commit(c.ID, "new.txt", "x", true); err != nil || replaced != nil {
			f.Errorf("replace=true on a new path: %+v, %v", replaced, err)
		}
	}},
	{"DirectoryCollisions", func(f *fx) {
		c := f.runFixture()
		c2 := f.candidate(f.model(c.Project, "m2", ""), metadata.Candidate{})
		for _, p := range []string{"dir/x", "file", "a/b/c"} {
			f.mustCommit(c.ID, p)
		}
		for _, p := range []string{"dir", "file/y", "file/y/z", "a", "a/b", "a/b/c/d"} {
			for _, replace := range []bool{false, true} {
				_, err := f.commit(c.ID, p, "x", replace)
				f.wantErr(fmt.Sprintf("commit %q replace=%v", p, replace), err, metadata.ErrConflict)
			}
		}
		// Shared prefixes without a "/" boundary are not collisions; nor are other candidates' rows.
		for _, p := range []string{"dirx", "dir.txt", "di", "filex/y", "a/bc", "a/b.c/d"} {
			f.mustCommit(c.ID, p)
		}
		for _, p := range []string{"dir", "file/y", "a"} {
			f.mustCommit(c2.ID, p)
		}
		// Once the directory is empty, its name is free for a file.
		if _, err := f.s.DeleteFile(f.ctx, c.ID, "dir/x"); err != nil {
			f.Fatal(err)
		}
		f.mustCommit(c.ID, "dir")
	}},
	{"Validation", func(f *fx) {
		c := f.runFixture()
		for _, p := range []string{"", "/a", "a/", "a//b", "./a", "a/../b", "..", "a\\b", "a\x00b", "é", strings.Repeat("a", 256), strings.Repeat("abcdefgh/", 114) + "abc"} {
			_, err := f.commit(c.ID, p, "x", false)
			f.wantErr(fmt.Sprintf("commit %.30q", p), err, metadata.ErrInvalid)
		}
		f.mustCommit(c.ID, "ok dir/A-b_c+d.e f")
		bad := []metadata.File{
			{OwnerID: c.ID, Path: "x", Size: -1, SHA256: sha(""), BlobKey: "k"},
			{OwnerID: c.ID, Path: "x", SHA256: "ABC", BlobKey: "k"},
			{OwnerID: c.ID, Path: "x", SHA256: strings.ToUpper(sha("")), BlobKey: "k"},
			{OwnerID: c.ID, Path: "x", SHA256: sha(""), BlobKey: ""},
			{OwnerID: c.ID, Path: "x", SHA256: sha(""), BlobKey: "k", ContentType: strings.Repeat("t", 256)},
		}
		for i := range bad {
			_, err := f.s.CommitFile(f.ctx, &bad[i], false)
			f.wantErr(fmt.Sprintf("bad row %d", i), err, metadata.ErrInvalid)
		}
		_, err := f.commit(999, "x", "x", false)
		f.wantErr("unknown candidate", err, metadata.ErrNotFound)
		_, err = f.s.File(f.ctx, c.ID, "missing")
		f.wantErr("File(missing)", err, metadata.ErrNotFound)
		_, err = f.s.File(f.ctx, 999, "x")
		f.wantErr("File(unknown candidate)", err, metadata.ErrNotFound)
	}},
	{"ListRecursive", func(f *fx) {
		c := f.runFixture()
		c2 := f.candidate(f.model(c.Project, "m2", ""), metadata.Candidate{})
		for _, p := range []string{"z", "dir/sub/2", "a.txt", "dir.txt", "dirx/3", "dir/1", "dir/sub.txt"} {
			f.mustCommit(c.ID, p)
		}
		f.mustCommit(c2.ID, "dir/other")
		for prefix, want := range map[string]string{
			"":        "a.txt,dir.txt,dir/1,dir/sub.txt,dir/sub/2,dirx/3,z",
			"dir":     "dir/1,dir/sub.txt,dir/sub/2",
			"dir/sub": "dir/sub/2",
			"z":       "",
			"nope":    "",
		} {
			for _, limit := range []int{0, 1, 2, 3} {
				all, _ := pageAll(f, limit, func(pg metadata.Page) ([]*metadata.File, string, error) {
					return f.s.ListFiles(f.ctx, c.ID, prefix, pg)
				})
				if got := paths(all); got != want {
					f.Errorf("ListFiles(%q, limit %d) = %s, want %s", prefix, limit, got, want)
				}
			}
		}
		_, _, err := f.s.ListFiles(f.ctx, c.ID, "dir/", metadata.Page{})
		f.wantErr("prefix with a trailing slash", err, metadata.ErrInvalid)
		_, _, err = f.s.ListFiles(f.ctx, 999, "", metadata.Page{})
		f.wantErr("unknown candidate", err, metadata.ErrNotFound)
	}},
	{"Delete", func(f *fx) {
		c := f.runFixture()
		row := f.mustCommit(c.ID, "a/b")
		got, err := f.s.DeleteFile(f.ctx, c.ID, "a/b")
		if err != nil || got.BlobKey != row.BlobKey || got.Path != "a/b" {
			f.Errorf("DeleteFile = %+v, %v; want the deleted row", got, err)
		}
		_, err = f.s.DeleteFile(f.ctx, c.ID, "a/b")
		f.wantErr("second delete", err, metadata.ErrNotFound)
		_, err = f.s.File(f.ctx, c.ID, "a/b")
		f.wantErr("File after delete", err, metadata.ErrNotFound)
		_, err = f.s.DeleteFile(f.ctx, c.ID, "a")
		f.wantErr("delete a directory", err, metadata.ErrNotFound)
		_, err = f.s.DeleteFile(f.ctx, c.ID, "../a")
		f.wantErr("delete a bad path", err, metadata.ErrInvalid)
	}},
	{"ForEachFile", func(f *fx) {
		c1 := f.runFixture()
		c2 := f.candidate(f.model(c1.Project, "m2", ""), metadata.Candidate{})
		var want []string
		for _, p := range []string{"b", "a/x", "c"} {
			f.mustCommit(c2.ID, p)
			f.mustCommit(c1.ID, p)
		}
		for _, c := range []*metadata.Candidate{c1, c2} {
			for _, p := range []string{"a/x", "b", "c"} {
				want = append(want, fmt.Sprint(c.ID, ":", p))
			}
		}
		var got []string
		err := f.s.ForEachFile(f.ctx, func(row *metadata.File) error {
			got = append(got, fmt.Sprint(row.OwnerID, ":", row.Path))
			return nil
		})
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			f.Errorf("ForEachFile = %v, %v; want %v", got, err, want)
		}
		stop := errors.New("stop")
		n := 0
		err = f.s.ForEachFile(f.ctx, func(*metadata.File) error {
			if n++; n == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 2 {
			f.Errorf("ForEachFile stopped after %d with %v, want 2 and fn's error", n, err)
		}
	}},
}

var pagingTests = []test{
	{"ForeignTokens", func(f *fx) {
		p, q := f.project("p"), f.project("q")
		m, m2 := f.model(p.ID, "m", ""), f.model(p.ID, "m2", "")
		f.model(q.ID, "a", "")
		f.model(q.ID, "b", "")
		c := f.candidate(m, metadata.Candidate{})
		f.candidate(m, metadata.Candidate{})
		f.candidate(m2, metadata.Candidate{})
		f.version(m, c, "")
		f.version(m, c, "")
		f.log(c.ID, nil, metrics{{Key: "a", Step: 1}, {Key: "a", Step: 2}, {Key: "b", Step: 1}, {Key: "b", Step: 2}}, nil)
		f.mustCommit(c.ID, "d/1")
		f.mustCommit(c.ID, "d/2")
		one := metadata.Page{Limit: 1}
		token := func(_ any, next string, err error) string {
			f.Helper()
			if err != nil || next == "" {
				f.Fatalf("want a next token, got %q, %v", next, err)
			}
			return next
		}
		tokens := map[string]string{
			"models":     token(f.s.ListModels(f.ctx, q.ID, one)),
			"candidates": token(f.s.ListCandidates(f.ctx, m.ID, one)),
			"versions":   token(f.s.ListVersions(f.ctx, m.ID, one)),
			"history":    token(f.s.MetricHistory(f.ctx, c.ID, "a", one)),
			"files":      token(f.s.ListFiles(f.ctx, c.ID, "d", one)),
		}
		tokens["garbage"] = "not a token!"
		tokens["truncated"] = tokens["files"][:5]
		lists := map[string]func(metadata.Page) error{
			"models":     func(pg metadata.Page) error { _, _, err := f.s.ListModels(f.ctx, p.ID, pg); return err },
			"candidates": func(pg metadata.Page) error { _, _, err := f.s.ListCandidates(f.ctx, m2.ID, pg); return err },
			"versions":   func(pg metadata.Page) error { _, _, err := f.s.ListVersions(f.ctx, m2.ID, pg); return err },
			"history":    func(pg metadata.Page) error { _, _, err := f.s.MetricHistory(f.ctx, c.ID, "b", pg); return err },
			"files":      func(pg metadata.Page) error { _, _, err := f.s.ListFiles(f.ctx, c.ID, "", pg); return err },
		}
		for lname, list := range lists {
			for tname, tok := range tokens {
				f.wantErr(fmt.Sprintf("%s listing with a %s token", lname, tname), list(metadata.Page{Token: tok}), metadata.ErrInvalid)
			}
		}
		// Each token still works where it came from.
		if _, _, err := f.s.ListFiles(f.ctx, c.ID, "d", metadata.Page{Token: tokens["files"]}); err != nil {
			f.Errorf("own token: %v", err)
		}
	}},
	{"ResumeAfterChanges", func(f *fx) {
		c := f.runFixture()
		for _, p := range []string{"a", "c", "e"} {
			f.mustCommit(c.ID, p)
		}
		page, next, err := f.s.ListFiles(f.ctx, c.ID, "", metadata.Page{Limit: 1})
		if err != nil || paths(page) != "a" {
			f.Fatalf("first page %s, %v", paths(page), err)
		}
		f.mustCommit(c.ID, "b")
		if _, err := f.s.DeleteFile(f.ctx, c.ID, "a"); err != nil {
			f.Fatal(err)
		}
		all, _ := pageAll(f, 2, func(pg metadata.Page) ([]*metadata.File, string, error) {
			if pg.Token == "" {
				pg.Token = next
			}
			return f.s.ListFiles(f.ctx, c.ID, "", pg)
		})
		if got := paths(all); got != "b,c,e" {
			f.Errorf("resumed listing %s, want b,c,e", got)
		}
	}},
}
