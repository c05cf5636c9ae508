package storetest

import (
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

func (f *fx) setAlias(modelID uint64, alias string, seq int64) {
	f.Helper()
	if err := f.s.SetAlias(f.ctx, modelID, alias, seq); err != nil {
		f.Fatalf("SetAlias(%q, %d): %v", alias, seq, err)
	}
}

func aliasString(as []metadata.ModelAlias) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("%s=%d", a.Alias, a.Seq))
	}
	return strings.Join(parts, ",")
}

var aliasTests = []test{
	{"SetMoveDelete", func(f *fx) {
		p := f.project("p")
		m, other := f.model(p.ID, "m", ""), f.model(p.ID, "other", "")
		c := f.candidate(m, metadata.Candidate{})
		v1, v2 := f.version(m, c, ""), f.version(m, c, "")
		o1 := f.version(other, c, "")

		as, err := f.s.Aliases(f.ctx, m.ID)
		if err != nil || as == nil || len(as) != 0 {
			f.Errorf("Aliases(no aliases) = %#v, %v; want empty, not nil", as, err)
		}
		f.setAlias(m.ID, "champion", v1.Seq)
		f.setAlias(m.ID, "Challenger", v2.Seq)
		f.setAlias(other.ID, "champion", o1.Seq)
		if seq, err := f.s.Alias(f.ctx, m.ID, "champion"); err != nil || seq != v1.Seq {
			f.Errorf("Alias(champion) = %d, %v", seq, err)
		}
		got, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "champion"})
		if err != nil || got.Seq != v1.Seq || got.ModelID != m.ID {
			f.Errorf("Version(alias champion) = %+v, %v", got, err)
		}
		f.setAlias(m.ID, "champion", v2.Seq) // moves
		if seq, err := f.s.Alias(f.ctx, m.ID, "champion"); err != nil || seq != v2.Seq {
			f.Errorf("Alias(champion) after move = %d, %v", seq, err)
		}
		if as, err := f.s.Aliases(f.ctx, m.ID); err != nil || aliasString(as) != "Challenger=2,champion=2" {
			f.Errorf("Aliases = %s, %v", aliasString(as), err)
		}
		if as, err := f.s.Aliases(f.ctx, other.ID); err != nil || aliasString(as) != "champion=1" {
			f.Errorf("Aliases(other) = %s, %v", aliasString(as), err)
		}
		_, err = f.s.Alias(f.ctx, m.ID, "challenger")
		f.wantErr("Alias(case differs)", err, metadata.ErrAliasNotFound)

		f.wantErr("DeleteAlias(champion)", f.s.DeleteAlias(f.ctx, m.ID, "champion"), nil)
		_, err = f.s.Alias(f.ctx, m.ID, "champion")
		f.wantErr("Alias(deleted)", err, metadata.ErrAliasNotFound)
		_, err = f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "champion"})
		f.wantErr("Version(deleted alias)", err, metadata.ErrAliasNotFound)
		f.wantErr("DeleteAlias(again)", f.s.DeleteAlias(f.ctx, m.ID, "champion"), metadata.ErrAliasNotFound)
		if seq, err := f.s.Alias(f.ctx, other.ID, "champion"); err != nil || seq != o1.Seq {
			f.Errorf("other model's alias = %d, %v", seq, err)
		}
	}},
	{"Errors", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		v := f.version(m, c, "")
		f.wantErr("SetAlias(unknown version)", f.s.SetAlias(f.ctx, m.ID, "a", v.Seq+1), metadata.ErrNotFound)
		f.wantErr("SetAlias(unknown model)", f.s.SetAlias(f.ctx, 999, "a", 1), metadata.ErrNotFound)
		_, err := f.s.Alias(f.ctx, 999, "a")
		f.wantErr("Alias(unknown model)", err, metadata.ErrNotFound)
		f.wantErr("DeleteAlias(unknown model)", f.s.DeleteAlias(f.ctx, 999, "a"), metadata.ErrNotFound)
		_, err = f.s.Aliases(f.ctx, 999)
		f.wantErr("Aliases(unknown model)", err, metadata.ErrNotFound)
		_, err = f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "a", Seq: 1})
		f.wantErr("Version(alias and seq)", err, metadata.ErrInvalid)
		for _, bad := range []string{"", "123", "0", "a/b", "a:b", "a@b", "latest", "LATEST", "v3", "V12", "tab\t",
			strings.Repeat("a", metadata.MaxAliasLen+1), "\xff"} {
			f.wantErr(fmt.Sprintf("SetAlias(%.12q)", bad), f.s.SetAlias(f.ctx, m.ID, bad, v.Seq), metadata.ErrInvalid)
		}
		for _, good := range []string{"champion", "v3a", "v", "1a", "latest2", "with space", "prod-eu_1.x", strings.Repeat("é", metadata.MaxAliasLen)} {
			f.wantErr(fmt.Sprintf("SetAlias(%.12q)", good), f.s.SetAlias(f.ctx, m.ID, good, v.Seq), nil)
		}
		if as, err := f.s.Aliases(f.ctx, m.ID); err != nil || len(as) != 8 {
			f.Errorf("Aliases: %d, %v; want 8", len(as), err)
		}
	}},
}

var versionUpdateTests = []test{
	{"Update", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		v := &metadata.Version{ModelID: m.ID, CandidateID: c.ID, Tags: []metadata.Tag{{Key: "a", Value: "1"}}}
		if err := f.s.CreateVersion(f.ctx, v); err != nil {
			f.Fatal(err)
		}
		f.setAlias(m.ID, "prod", v.Seq)
		got, err := f.s.UpdateVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}, metadata.VersionUpdate{
			Description: ptr("first"), Stage: ptr("Staging"),
			SetTags: []metadata.Tag{{Key: "b", Value: "2"}}, DeleteTags: []string{"a"},
		})
		if err != nil || got.Description != "first" || got.Stage != "Staging" || tagString(got.Tags) != "b=2" ||
			got.Semver != v.Semver || got.CandidateID != c.ID || got.UpdatedAt.Before(v.UpdatedAt) {
			f.Errorf("UpdateVersion = %+v, %v", got, err)
		}
		for _, ref := range []metadata.VersionRef{{ModelID: m.ID, Alias: "prod"}, {ModelID: m.ID, Semver: v.Semver}, {Project: p.ID, ID: v.ID}} {
			got, err = f.s.UpdateVersion(f.ctx, ref, metadata.VersionUpdate{Stage: ptr("Production")})
			if err != nil || got.Stage != "Production" || got.Description != "first" || tagString(got.Tags) != "b=2" {
				f.Errorf("UpdateVersion(%+v) = %+v, %v", ref, got, err)
			}
		}
		stored, err := f.s.Version(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq})
		if err != nil || stored.Stage != "Production" || stored.Description != "first" || tagString(stored.Tags) != "b=2" {
			f.Errorf("stored version %+v, %v", stored, err)
		}
		for name, u := range map[string]metadata.VersionUpdate{
			"unknown stage":    {Stage: ptr("staging")},
			"empty stage":      {Stage: ptr("")},
			"long description": {Description: ptr(strings.Repeat("d", metadata.MaxDescriptionLen+1))},
			"long tag value":   {SetTags: []metadata.Tag{{Key: "k", Value: strings.Repeat("v", metadata.MaxTagValueLen+1)}}},
			"empty delete key": {DeleteTags: []string{""}},
		} {
			_, err := f.s.UpdateVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}, u)
			f.wantErr(name, err, metadata.ErrInvalid)
		}
		_, err = f.s.UpdateVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: 9}, metadata.VersionUpdate{Stage: ptr("None")})
		f.wantErr("UpdateVersion(unknown seq)", err, metadata.ErrNotFound)
		_, err = f.s.UpdateVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "nope"}, metadata.VersionUpdate{Stage: ptr("None")})
		f.wantErr("UpdateVersion(unknown alias)", err, metadata.ErrAliasNotFound)
		_, err = f.s.UpdateVersion(f.ctx, metadata.VersionRef{}, metadata.VersionUpdate{})
		f.wantErr("UpdateVersion(empty ref)", err, metadata.ErrInvalid)
	}},
	{"Delete", func(f *fx) {
		p := f.project("p")
		m := f.model(p.ID, "m", "")
		c := f.candidate(m, metadata.Candidate{})
		f.mustCommit(c.ID, "model/weights.bin")
		v1, v2 := f.version(m, c, ""), f.version(m, c, "")
		f.setAlias(m.ID, "old", v1.Seq)
		f.setAlias(m.ID, "older", v1.Seq)
		f.setAlias(m.ID, "new", v2.Seq)

		f.wantErr("DeleteVersion(v1)", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v1.Seq}), nil)
		for _, ref := range []metadata.VersionRef{{ModelID: m.ID, Seq: v1.Seq}, {ModelID: m.ID, Semver: v1.Semver}, {Project: p.ID, ID: v1.ID}} {
			_, err := f.s.Version(f.ctx, ref)
			f.wantErr(fmt.Sprintf("Version(%+v) after delete", ref), err, metadata.ErrNotFound)
		}
		if as, err := f.s.Aliases(f.ctx, m.ID); err != nil || aliasString(as) != "new=2" {
			f.Errorf("Aliases after delete = %s, %v", aliasString(as), err)
		}
		f.getCandidate(c.ID) // the candidate and its files stay
		if _, err := f.s.File(f.ctx, c.ID, "model/weights.bin"); err != nil {
			f.Errorf("file after version delete: %v", err)
		}
		// Seq and ID are never reused; the semver is free again.
		v3 := f.version(m, c, v1.Semver)
		if v3.Seq != 3 || v3.ID <= v2.ID {
			f.Errorf("version after delete: seq %d id %d", v3.Seq, v3.ID)
		}
		all, _ := pageAll(f, 0, func(pg metadata.Page) ([]*metadata.Version, string, error) {
			return f.s.ListVersions(f.ctx, m.ID, pg)
		})
		if len(all) != 2 || all[0].Seq != 2 || all[1].Seq != 3 {
			f.Errorf("ListVersions after delete: %d versions", len(all))
		}
		f.wantErr("DeleteVersion(by alias)", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "new"}), nil)
		if as, err := f.s.Aliases(f.ctx, m.ID); err != nil || len(as) != 0 {
			f.Errorf("Aliases after deleting v2 = %s, %v", aliasString(as), err)
		}
		f.wantErr("DeleteVersion(again)", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Seq: v1.Seq}), metadata.ErrNotFound)
		f.wantErr("DeleteVersion(unknown alias)", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID, Alias: "new"}), metadata.ErrAliasNotFound)
		f.wantErr("DeleteVersion(bad ref)", f.s.DeleteVersion(f.ctx, metadata.VersionRef{ModelID: m.ID}), metadata.ErrInvalid)
		if got := f.getModel(m.ID); !got.InRegistry {
			f.Errorf("model left the registry: %+v", got)
		}
	}},
}
