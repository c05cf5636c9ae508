package boltstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// maxReported bounds the problems Verify spells out; it still counts them all.
const maxReported = 20

// Verify checks the whole database for `mlgate fsck`: every applied migration's verify, then that every
// index entry points at a record that agrees with the key, every record has all its index entries, and
// counters are at or above every number issued. It reads one consistent snapshot in a single read
// transaction, which on a large database delays writers that need to grow the file: run it on a quiet
// server or offline. It returns nil, the context's error, or an error wrapping ErrCorrupt that counts the
// problems and lists the first ones.
func (s *Store) Verify(ctx context.Context) error {
	return s.view(ctx, func(tx *bolt.Tx) error { return verifyTx(ctx, tx) })
}

func verifyTx(ctx context.Context, tx *bolt.Tx) error {
	ver, err := readDBVersion(tx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= ver {
			if err := m.verify(tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
	}
	if ver != knownVersion() {
		return fmt.Errorf("db_version %d, want %d: %w", ver, knownVersion(), ErrCorrupt)
	}
	v := &verifier{tx: tx}
	for _, check := range []func(){v.projects, v.models, v.candidates, v.runData, v.metricRanks, v.loggedModels, v.versions, v.aliases, v.files, v.tokens, v.imports, v.settings} {
		if err := ctx.Err(); err != nil {
			return err
		}
		check()
	}
	if v.count == 0 {
		return nil
	}
	return fmt.Errorf("%d problems: %s: %w", v.count, strings.Join(v.reported, "; "), ErrCorrupt)
}

type verifier struct {
	tx       *bolt.Tx
	count    int
	reported []string
	cand     *metadata.Candidate // one-entry cache: most buckets are grouped by candidate
}

func (v *verifier) bad(format string, args ...any) {
	v.count++
	if len(v.reported) < maxReported {
		v.reported = append(v.reported, fmt.Sprintf(format, args...))
	}
}

// each walks a bucket.
func (v *verifier) each(name []byte, fn func(k, val []byte)) {
	c := bk(v.tx, name).Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		fn(k, val)
	}
}

// decode reads a JSON record, reporting it if it does not decode.
func (v *verifier) decode(bucket []byte, k, data []byte, out any) bool {
	if err := json.Unmarshal(data, out); err != nil {
		v.bad("%s %x: %v", bucket, k, err)
		return false
	}
	return true
}

// expect reports a missing index entry, or one whose value differs from want (nil want: any value).
func (v *verifier) expect(bucket, k, want []byte, owner string) {
	got, ok := lookup(bk(v.tx, bucket), k)
	switch {
	case !ok:
		v.bad("%s: no %s entry %x", owner, bucket, k)
	case want != nil && !bytes.Equal(got, want):
		v.bad("%s: %s entry %x is %x, want %x", owner, bucket, k, got, want)
	}
}

// counterCovers reports a counter below a number already issued, which would issue it again.
func (v *verifier) counterCovers(k []byte, issued int64, owner string) {
	last, _, err := getU64(bk(v.tx, bucketCounters), k)
	if err != nil || int64(last) < issued {
		v.bad("%s: counter %q is %d, below issued %d (%v)", owner, k, last, issued, err)
	}
}

func (v *verifier) candidate(id uint64) *metadata.Candidate {
	if v.cand != nil && v.cand.ID == id {
		return v.cand
	}
	c, err := getCandidate(v.tx, id)
	if err != nil {
		return nil
	}
	v.cand = c
	return c
}

// owner returns the project of a file or version owner (a candidate or a logged model); ok is false when
// id names neither.
func (v *verifier) owner(id uint64) (project int64, ok bool) {
	if c := v.candidate(id); c != nil {
		return c.Project, true
	}
	if lm, err := getLoggedModel(v.tx, id); err == nil {
		return lm.Project, true
	}
	return 0, false
}

func (v *verifier) projects() {
	v.each(bucketProjects, func(k, data []byte) {
		var p metadata.Project
		if !v.decode(bucketProjects, k, data, &p) {
			return
		}
		owner := fmt.Sprintf("project %d", p.ID)
		if !bytes.Equal(k, idKey(uint64(p.ID))) {
			v.bad("%s: stored under key %x", owner, k)
		}
		v.expect(bucketProjectsByPath, []byte(p.Path), idKey(uint64(p.ID)), owner)
		v.counterCovers(counterProjectKey, p.ID, owner)
	})
	v.each(bucketProjectsByPath, func(k, val []byte) {
		p, err := getProject(v.tx, int64(u64Or0(val)))
		if err != nil || p.Path != string(k) {
			v.bad("projects_by_path %q → %x: no such project (%v)", k, val, err)
		}
	})
}

func (v *verifier) models() {
	seq := bk(v.tx, bucketModels).Sequence()
	v.each(bucketModels, func(k, data []byte) {
		var m metadata.Model
		if !v.decode(bucketModels, k, data, &m) {
			return
		}
		owner := fmt.Sprintf("model %d", m.ID)
		if !bytes.Equal(k, idKey(m.ID)) || m.ID > seq {
			v.bad("%s: stored under key %x, sequence %d", owner, k, seq)
		}
		if _, err := getProject(v.tx, m.Project); err != nil {
			v.bad("%s: %v", owner, err)
		}
		id := idKey(m.ID)
		v.expect(bucketModelsByName, idStrKey(uint64(m.Project), m.Name), id, owner)
		v.expect(bucketModelsByDisplay, idStrKey(uint64(m.Project), m.DisplayName), id, owner)
		v.expect(bucketModelsByIID, pairKey(uint64(m.Project), uint64(m.IID)), id, owner)
		v.counterCovers(projectCounterKey(m.Project, counterModel), m.IID, owner)
	})
	indexes := []struct {
		bucket []byte
		match  func(k []byte, m *metadata.Model) bool
	}{
		{bucketModelsByName, func(k []byte, m *metadata.Model) bool { return string(k[8:]) == m.Name }},
		{bucketModelsByDisplay, func(k []byte, m *metadata.Model) bool { return string(k[8:]) == m.DisplayName }},
		{bucketModelsByIID, func(k []byte, m *metadata.Model) bool { return len(k) == 16 && int64(decodeU64(k[8:])) == m.IID }},
	}
	for _, ix := range indexes {
		v.each(ix.bucket, func(k, val []byte) {
			var m *metadata.Model
			var err error
			if len(k) > 8 && len(val) == 8 {
				m, err = getModel(v.tx, decodeU64(val))
			}
			if m == nil || int64(decodeU64(k)) != m.Project || !ix.match(k, m) {
				v.bad("%s %x → %x: no matching model (%v)", ix.bucket, k, val, err)
			}
		})
	}
}

func (v *verifier) candidates() {
	seq := bk(v.tx, bucketCandidates).Sequence()
	v.each(bucketCandidates, func(k, data []byte) {
		var c metadata.Candidate
		if !v.decode(bucketCandidates, k, data, &c) {
			return
		}
		owner := fmt.Sprintf("candidate %d", c.ID)
		if !bytes.Equal(k, idKey(c.ID)) || c.ID > seq {
			v.bad("%s: stored under key %x, sequence %d", owner, k, seq)
		}
		if m, err := getModel(v.tx, c.ModelID); err != nil || m.Project != c.Project {
			v.bad("%s: model %d missing or in another project (%v)", owner, c.ModelID, err)
		}
		id := idKey(c.ID)
		v.expect(bucketCandidatesByEID, c.EID[:], id, owner)
		v.expect(bucketCandidatesByIID, pairKey(uint64(c.Project), uint64(c.IID)), id, owner)
		v.expect(bucketCandidatesByModel, candidateByModelKey(c.ModelID, c.StartTime, c.ID), nil, owner)
		v.counterCovers(projectCounterKey(c.Project, counterCandidate), c.IID, owner)
	})
	v.each(bucketCandidatesByEID, func(k, val []byte) {
		c := v.candidate(u64Or0(val))
		if c == nil || !bytes.Equal(c.EID[:], k) {
			v.bad("candidates_by_eid %x → %x: no matching candidate", k, val)
		}
	})
	v.each(bucketCandidatesByIID, func(k, val []byte) {
		c := v.candidate(u64Or0(val))
		if c == nil || len(k) != 16 || !bytes.Equal(k, pairKey(uint64(c.Project), uint64(c.IID))) {
			v.bad("candidates_by_iid %x → %x: no matching candidate", k, val)
		}
	})
	v.each(bucketCandidatesByModel, func(k, _ []byte) {
		var c *metadata.Candidate
		if len(k) == 24 {
			c = v.candidate(decodeU64(k[16:]))
		}
		if c == nil || !bytes.Equal(k, candidateByModelKey(c.ModelID, c.StartTime, c.ID)) {
			v.bad("candidates_by_model %x: no matching candidate", k)
		}
	})
}

// runData checks params, tags, the metric history and metrics_latest: each history group (candidate, key)
// has exactly its greatest point as latest, and each latest point has its candidates_by_metric entry.
func (v *verifier) runData() {
	for _, b := range [][]byte{bucketParams, bucketTags} {
		v.each(b, func(k, _ []byte) {
			if len(k) <= 8 || v.candidate(decodeU64(k)) == nil {
				v.bad("%s %x: no candidate", b, k)
			}
		})
	}
	latest := bk(v.tx, bucketMetricsLatest)
	var group []byte // u64(cand) | str0(key) of the current history group
	var best latestMetric
	closeGroup := func() {
		if group == nil {
			return
		}
		cand, key := decodeU64(group), string(group[8:len(group)-1])
		val := latest.Get(idStrKey(cand, key))
		got, err := decodeLatest(key, val)
		if val == nil || err != nil || got.greater(best) || best.greater(got) {
			v.bad("metric %q of candidate %d: latest %x, want %x", key, cand, val, best.encode())
		}
	}
	v.each(bucketMetrics, func(k, _ []byte) {
		if len(k) < 8+1+24 || k[len(k)-25] != 0 || v.candidate(decodeU64(k)) == nil {
			v.bad("metrics %x: malformed or no candidate", k)
			return
		}
		rest := k[len(k)-24:]
		p := latestMetric{key: string(k[8 : len(k)-25]), step: decodeI64(rest), ts: decodeI64(rest[8:]), value: decodeF64b(rest[16:])}
		if g := k[:len(k)-24]; !bytes.Equal(g, group) {
			closeGroup()
			group, best = append([]byte(nil), g...), p
		} else if p.greater(best) {
			best = p
		}
	})
	closeGroup()
	v.each(bucketMetricsLatest, func(k, val []byte) {
		var c *metadata.Candidate
		if len(k) > 8 {
			c = v.candidate(decodeU64(k))
		}
		if c == nil {
			v.bad("metrics_latest %x: no candidate", k)
			return
		}
		m, err := decodeLatest(string(k[8:]), val)
		if err != nil {
			v.bad("metrics_latest %x: %v", k, err)
			return
		}
		owner := fmt.Sprintf("metric %q of candidate %d", m.key, c.ID)
		v.expect(bucketMetrics, metricKey(c.ID, m), nil, owner)
		v.expect(bucketCandidatesByMetric, metricRankKey(c.ModelID, m, c.ID), nil, owner)
	})
}

// metricRanks checks that each candidates_by_metric entry is exactly the one its latest point implies.
func (v *verifier) metricRanks() {
	latest := bk(v.tx, bucketMetricsLatest)
	v.each(bucketCandidatesByMetric, func(k, _ []byte) {
		ok := false
		if n := len(k); n >= 8+1+17 && k[n-18] == 0 {
			if c := v.candidate(decodeU64(k[n-8:])); c != nil {
				key := string(k[8 : n-18])
				m, err := decodeLatest(key, latest.Get(idStrKey(c.ID, key)))
				ok = err == nil && bytes.Equal(k, metricRankKey(c.ModelID, m, c.ID))
			}
		}
		if !ok {
			v.bad("candidates_by_metric %x: no matching latest metric", k)
		}
	})
}

func (v *verifier) versions() {
	v.each(bucketVersions, func(k, data []byte) {
		var ver metadata.Version
		if !v.decode(bucketVersions, k, data, &ver) {
			return
		}
		owner := fmt.Sprintf("version %d/%d", ver.ModelID, ver.Seq)
		if !bytes.Equal(k, pairKey(ver.ModelID, uint64(ver.Seq))) {
			v.bad("%s: stored under key %x", owner, k)
		}
		if m, err := getModel(v.tx, ver.ModelID); err != nil || m.Project != ver.Project {
			v.bad("%s: model missing or in another project (%v)", owner, err)
		}
		if p, ok := v.owner(ver.Owner()); !ok || p != ver.Project || (ver.CandidateID != 0) == (ver.LoggedModelID != 0) {
			v.bad("%s: owner (candidate %d, logged model %d) missing, ambiguous or in another project",
				owner, ver.CandidateID, ver.LoggedModelID)
		}
		sv, err := parseSemver(ver.Semver)
		if err != nil {
			v.bad("%s: %v", owner, err)
			return
		}
		v.expect(bucketVersionsByID, pairKey(uint64(ver.Project), uint64(ver.ID)), k, owner)
		v.expect(bucketVersionsBySemver, idStrKey(ver.ModelID, ver.Semver), idKey(uint64(ver.Seq)), owner)
		v.expect(bucketVersionsOrder, versionOrderKey(ver.ModelID, sv, ver.Seq), nil, owner)
		v.expect(bucketVersionsByCand, versionByCandidateKey(ver.Owner(), ver.ModelID, ver.Seq), nil, owner)
		v.counterCovers(modelCounterKey(ver.ModelID, counterVersion), ver.Seq, owner)
		v.counterCovers(projectCounterKey(ver.Project, counterVersion), ver.ID, owner)
	})
	// Each index below must lead back to a version whose own index key is exactly the entry.
	version := func(modelID, seq uint64) *metadata.Version {
		ver, err := getVersion(v.tx, modelID, int64(seq))
		if err != nil {
			return nil
		}
		return ver
	}
	v.each(bucketVersionsByID, func(k, val []byte) {
		var ver *metadata.Version
		if len(k) == 16 && len(val) == 16 {
			ver = version(decodeU64(val), decodeU64(val[8:]))
		}
		if ver == nil || !bytes.Equal(k, pairKey(uint64(ver.Project), uint64(ver.ID))) {
			v.bad("versions_by_id %x → %x: no matching version", k, val)
		}
	})
	v.each(bucketVersionsBySemver, func(k, val []byte) {
		var ver *metadata.Version
		if len(k) > 8 && len(val) == 8 {
			ver = version(decodeU64(k), decodeU64(val))
		}
		if ver == nil || ver.Semver != string(k[8:]) {
			v.bad("versions_by_semver %x → %x: no matching version", k, val)
		}
	})
	v.each(bucketVersionsOrder, func(k, _ []byte) {
		ok := false
		if len(k) >= 8+25+8 {
			if ver := version(decodeU64(k), decodeU64(k[len(k)-8:])); ver != nil {
				sv, err := parseSemver(ver.Semver)
				ok = err == nil && bytes.Equal(k, versionOrderKey(ver.ModelID, sv, ver.Seq))
			}
		}
		if !ok {
			v.bad("versions_order %x: no matching version", k)
		}
	})
	v.each(bucketVersionsByCand, func(k, _ []byte) {
		var ver *metadata.Version
		if len(k) == 24 {
			ver = version(decodeU64(k[8:]), decodeU64(k[16:]))
		}
		if ver == nil || ver.Owner() != decodeU64(k) {
			v.bad("versions_by_candidate %x: no matching version", k)
		}
	})
}

// aliases checks that every alias points at an existing version of its model.
func (v *verifier) aliases() {
	v.each(bucketAliases, func(k, val []byte) {
		if len(k) <= 8 || len(val) != 8 {
			v.bad("aliases %x → %x: malformed", k, val)
			return
		}
		if _, err := getVersion(v.tx, decodeU64(k), int64(decodeU64(val))); err != nil {
			v.bad("alias %q of model %d → version %d: %v", k[8:], decodeU64(k), decodeU64(val), err)
		}
	})
}

// tokens checks that each token sits under its own id and that tokens_by_hash and the records agree both
// ways.
func (v *verifier) tokens() {
	v.each(bucketTokens, func(k, data []byte) {
		var t metadata.Token
		if !v.decode(bucketTokens, k, data, &t) {
			return
		}
		owner := fmt.Sprintf("token %q", t.ID)
		if t.ID != string(k) {
			v.bad("%s: stored under key %q", owner, k)
		}
		hash, err := decodeTokenHash(t.SecretHash)
		if err != nil {
			v.bad("%s: %v", owner, err)
			return
		}
		v.expect(bucketTokensByHash, hash, k, owner)
	})
	v.each(bucketTokensByHash, func(k, val []byte) {
		t, err := getToken(v.tx, string(val))
		if err != nil || t.SecretHash != hex.EncodeToString(k) {
			v.bad("tokens_by_hash %x → %q: no such token (%v)", k, val, err)
		}
	})
}

// files checks that each row sits under its own key, belongs to a candidate or logged model, and has no
// file as an ancestor directory.
func (v *verifier) files() {
	files := bk(v.tx, bucketFiles)
	v.each(bucketFiles, func(k, data []byte) {
		var f metadata.File
		if !v.decode(bucketFiles, k, data, &f) {
			return
		}
		if _, ok := v.owner(f.OwnerID); !bytes.Equal(k, idStrKey(f.OwnerID, f.Path)) || !ok {
			v.bad("file %x: stored under another key or without owner", k)
			return
		}
		for i := strings.IndexByte(f.Path, '/'); i >= 0; i = nextSlash(f.Path, i) {
			if files.Get(idStrKey(f.OwnerID, f.Path[:i])) != nil {
				v.bad("file %q of candidate %d: ancestor %q is a file", f.Path, f.OwnerID, f.Path[:i])
			}
		}
	})
}

// loggedModels checks logged models against their two indexes (both ways), their metrics against their
// latest points and metric order, and run inputs against the datasets they name.
func (v *verifier) loggedModels() {
	seq := bk(v.tx, bucketCandidates).Sequence()
	v.each(bucketLoggedModels, func(k, data []byte) {
		var lm metadata.LoggedModel
		if !v.decode(bucketLoggedModels, k, data, &lm) {
			return
		}
		owner := fmt.Sprintf("logged model %d", lm.ID)
		if !bytes.Equal(k, idKey(lm.ID)) || lm.ID > seq || v.candidate(lm.ID) != nil {
			v.bad("%s: stored under key %x, sequence %d, or sharing its id with a candidate", owner, k, seq)
		}
		if m, err := getModel(v.tx, lm.ModelID); err != nil || m.Project != lm.Project {
			v.bad("%s: model %d missing or in another project (%v)", owner, lm.ModelID, err)
		}
		v.expect(bucketLoggedModelsByLMID, lm.LMID[:], idKey(lm.ID), owner)
		v.expect(bucketLoggedModelsByMdl, candidateByModelKey(lm.ModelID, lm.CreatedAt.UnixMilli(), lm.ID), nil, owner)
	})
	v.each(bucketLoggedModelsByLMID, func(k, val []byte) {
		lm, err := getLoggedModel(v.tx, u64Or0(val))
		if err != nil || !bytes.Equal(lm.LMID[:], k) {
			v.bad("logged_models_by_lmid %x → %x: no matching logged model (%v)", k, val, err)
		}
	})
	v.each(bucketLoggedModelsByMdl, func(k, _ []byte) {
		ok := false
		if len(k) == 24 {
			lm, err := getLoggedModel(v.tx, decodeU64(k[16:]))
			ok = err == nil && bytes.Equal(k, candidateByModelKey(lm.ModelID, lm.CreatedAt.UnixMilli(), lm.ID))
		}
		if !ok {
			v.bad("logged_models_by_model %x: no matching logged model", k)
		}
	})
	v.each(bucketLMMetricsLatest, func(k, val []byte) {
		var lm *metadata.LoggedModel
		if len(k) > 8 {
			lm, _ = getLoggedModel(v.tx, decodeU64(k))
		}
		m, err := decodeLatest(string(k[min(len(k), 8):]), val)
		if lm == nil || err != nil {
			v.bad("lm_metrics_latest %x: no logged model or malformed (%v)", k, err)
			return
		}
		owner := fmt.Sprintf("metric %q of logged model %d", m.key, lm.ID)
		v.expect(bucketLMMetrics, metricKey(lm.ID, m), nil, owner)
		v.expect(bucketLMsByMetric, metricRankKey(lm.ModelID, m, lm.ID), nil, owner)
	})
	v.each(bucketLMMetrics, func(k, _ []byte) {
		if len(k) < 8+1+24 || k[len(k)-25] != 0 {
			v.bad("lm_metrics %x: malformed", k)
			return
		}
		if _, err := getLoggedModel(v.tx, decodeU64(k)); err != nil {
			v.bad("lm_metrics %x: %v", k, err)
		}
	})
	latest := bk(v.tx, bucketLMMetricsLatest)
	v.each(bucketLMsByMetric, func(k, _ []byte) {
		ok := false
		if n := len(k); n >= 8+1+17 && k[n-18] == 0 {
			if lm, err := getLoggedModel(v.tx, decodeU64(k[n-8:])); err == nil {
				key := string(k[8 : n-18])
				m, err := decodeLatest(key, latest.Get(idStrKey(lm.ID, key)))
				ok = err == nil && bytes.Equal(k, metricRankKey(lm.ModelID, m, lm.ID))
			}
		}
		if !ok {
			v.bad("lms_by_metric %x: no matching latest metric", k)
		}
	})
	v.each(bucketRunIO, func(k, val []byte) {
		if len(k) < 9 || v.candidate(decodeU64(k)) == nil {
			v.bad("run_io %x: no candidate", k)
			return
		}
		if k[8] != ioDataset {
			return
		}
		var link datasetLink
		if !v.decode(bucketRunIO, k, val, &link) {
			return
		}
		c := v.candidate(decodeU64(k))
		if bk(v.tx, bucketDatasets).Get(datasetKey(c.ModelID, link.Name, link.Digest)) == nil {
			v.bad("run_io %x: dataset %q@%s of model %d missing", k, link.Name, link.Digest, c.ModelID)
		}
	})
}

// imports checks that each journal record is valid, sits under the key its fields make, and belongs to an
// existing project. Its targets are not checked: a record may outlive what it names.
func (v *verifier) imports() {
	v.each(bucketImports, func(k, data []byte) {
		var r metadata.ImportRecord
		if !v.decode(bucketImports, k, data, &r) {
			return
		}
		if !bytes.Equal(k, importKey(r.Project, r.Source, r.Kind, r.SourceID)) {
			v.bad("import record %x: stored under another key", k)
			return
		}
		if err := metadata.ValidateImportRecord(&r); err != nil {
			v.bad("import record %x: %v", k, err)
		}
		if _, err := getProject(v.tx, r.Project); err != nil {
			v.bad("import record %x: %v", k, err)
		}
	})
}

// settings checks the instance settings: only known names, with values of their shape. Messages never
// show a value: the signing key is a secret.
func (v *verifier) settings() {
	v.each(bucketSettings, func(k, val []byte) {
		switch {
		case !bytes.Equal(k, settingSigningKey):
			v.bad("settings: unknown setting %q", k)
		case len(val) != metadata.SigningKeyLen:
			v.bad("settings/signing_key has %d bytes, want %d", len(val), metadata.SigningKeyLen)
		}
	})
}

// u64Or0 decodes an 8-byte id value; anything else is 0, which no record has.
func u64Or0(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return decodeU64(b)
}
