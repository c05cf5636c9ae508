package boltstore

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

type population struct {
	p          *metadata.Project
	m1, m2     *metadata.Model
	c1, c2, c3 *metadata.Candidate
	v1, v2, v3 *metadata.Version
	lm         *metadata.LoggedModel
	rec        *metadata.ImportRecord
}

func populate(t *testing.T, s *Store) population {
	t.Helper()
	ctx := t.Context()
	var pop population
	var err error
	pop.p, err = s.EnsureProject(ctx, "p")
	must(t, err)
	pop.m1, pop.m2 = &metadata.Model{Project: pop.p.ID, DisplayName: "M One"}, &metadata.Model{Project: pop.p.ID, Name: "m2"}
	must(t, s.CreateModel(ctx, pop.m1))
	must(t, s.CreateModel(ctx, pop.m2))
	pop.c1, pop.c2, pop.c3 = &metadata.Candidate{ModelID: pop.m1.ID}, &metadata.Candidate{ModelID: pop.m1.ID}, &metadata.Candidate{ModelID: pop.m2.ID}
	for _, c := range []*metadata.Candidate{pop.c1, pop.c2, pop.c3} {
		must(t, s.CreateCandidate(ctx, c, []metadata.Tag{{Key: "t", Value: "v"}}))
	}
	must(t, s.LogBatch(ctx, pop.c1.ID, []metadata.Param{{Key: "lr", Value: "1"}},
		[]metadata.Metric{{Key: "loss", Value: 1, Step: 1}, {Key: "loss", Value: 0.5, Step: 2}, {Key: "acc", Value: math.NaN()}}, nil))
	must(t, s.LogBatch(ctx, pop.c2.ID, nil, []metadata.Metric{{Key: "loss", Value: 2, Step: 1}}, nil))
	pop.v1, pop.v2 = &metadata.Version{ModelID: pop.m1.ID, CandidateID: pop.c1.ID}, &metadata.Version{ModelID: pop.m2.ID, CandidateID: pop.c1.ID, Semver: "2.0.0-rc.1"}
	must(t, s.CreateVersion(ctx, pop.v1))
	must(t, s.CreateVersion(ctx, pop.v2))
	for _, p := range []string{"a/b", "c"} {
		_, err := s.CommitFile(ctx, &metadata.File{OwnerID: pop.c1.ID, Path: p, SHA256: strings.Repeat("0", 64), BlobKey: "k"}, false)
		must(t, err)
	}
	pop.lm = &metadata.LoggedModel{ModelID: pop.m1.ID, Name: "model", SourceRunID: pop.c1.ID}
	must(t, s.CreateLoggedModel(ctx, pop.lm))
	must(t, s.LogBatch(ctx, pop.c1.ID, nil, []metadata.Metric{{Key: "acc", Value: 0.9, LoggedModel: pop.lm.LMID, DatasetName: "eval", DatasetDigest: "d"}}, nil))
	_, err = s.CommitFile(ctx, &metadata.File{OwnerID: pop.lm.ID, Path: "MLmodel", SHA256: strings.Repeat("0", 64), BlobKey: "k2"}, false)
	must(t, err)
	pop.v3 = &metadata.Version{ModelID: pop.m1.ID, LoggedModelID: pop.lm.ID}
	must(t, s.CreateVersion(ctx, pop.v3))
	must(t, s.LogInputs(ctx, pop.c1.ID, []metadata.DatasetInput{{Dataset: metadata.Dataset{Name: "eval", Digest: "d", SourceType: "code", Source: "{}"}}},
		[]metadata.LMID{pop.lm.LMID}))
	must(t, s.LogOutputs(ctx, pop.c1.ID, []metadata.ModelOutput{{LoggedModel: pop.lm.LMID}}))
	pop.rec = &metadata.ImportRecord{Project: pop.p.ID, Source: "http://src", Kind: metadata.ImportRun, SourceID: pop.c1.EID.String(),
		TargetID: pop.c1.ID, TargetIID: pop.c1.IID, State: metadata.ImportDone}
	must(t, s.PutImportRecord(ctx, pop.rec))
	return pop
}

// TestVerifyDetectsBrokenIndexes breaks the database one way at a time inside a write transaction, runs the
// checks in that transaction, and rolls it back.
func TestVerifyDetectsBrokenIndexes(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	pop := populate(t, s)
	must(t, s.Verify(t.Context()))
	p, m1, m2, c1, c2 := uint64(pop.p.ID), pop.m1.ID, pop.m2.ID, pop.c1.ID, pop.c2.ID
	lossOf := func(step int64, v float64) latestMetric { return latestMetric{key: "loss", step: step, value: v} }
	sv1, _ := parseSemver(pop.v1.Semver)
	tok := &metadata.Token{ID: "tok1", ProjectPath: "p", Scope: metadata.ScopeRead, SecretHash: strings.Repeat("ab", 32)}
	must(t, s.CreateToken(t.Context(), tok))
	must(t, s.Verify(t.Context()))
	tokHash, _ := decodeTokenHash(tok.SecretHash)

	del := func(b []byte, k []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return bk(tx, b).Delete(k) }
	}
	put := func(b []byte, k, v []byte) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return bk(tx, b).Put(k, v) }
	}
	cases := []struct {
		name    string
		corrupt func(*bolt.Tx) error
		want    string
	}{
		{"project without path index", del(bucketProjectsByPath, []byte("p")), "no projects_by_path entry"},
		{"path index to nowhere", put(bucketProjectsByPath, []byte("q"), idKey(9)), "projects_by_path"},
		{"model without name index", del(bucketModelsByName, idStrKey(p, "m_one")), "no models_by_name entry"},
		{"display index to nowhere", put(bucketModelsByDisplay, idStrKey(p, "ghost"), idKey(99)), "models_by_display"},
		{"iid index to the wrong model", put(bucketModelsByIID, pairKey(p, 1), idKey(m2)), "models_by_iid"},
		{"undecodable model", put(bucketModels, idKey(m1), []byte("{")), "models"},
		{"candidate without eid index", del(bucketCandidatesByEID, pop.c1.EID[:]), "no candidates_by_eid entry"},
		{"stray model order entry", put(bucketCandidatesByModel, candidateByModelKey(m1, 0, 999), nil), "candidates_by_model"},
		{"candidate record gone", del(bucketCandidates, idKey(c2)), "candidates_by_eid"},
		{"param of no candidate", put(bucketParams, idStrKey(999, "k"), []byte("v")), "params"},
		{"latest is not the greatest", put(bucketMetricsLatest, idStrKey(c1, "loss"), lossOf(1, 1).encode()), "latest"},
		{"latest point missing from history", del(bucketMetrics, metricKey(c1, lossOf(2, 0.5))), "no metrics entry"},
		{"rank entry missing", del(bucketCandidatesByMetric, metricRankKey(m1, lossOf(1, 2), c2)), "no candidates_by_metric entry"},
		{"stray rank entry", put(bucketCandidatesByMetric, metricRankKey(m1, lossOf(0, 7), c2), nil), "candidates_by_metric"},
		{"version without order entry", del(bucketVersionsOrder, versionOrderKey(m1, sv1, 1)), "no versions_order entry"},
		{"semver index to the wrong seq", put(bucketVersionsBySemver, idStrKey(m2, "2.0.0-rc.1"), idKey(2)), "versions_by_semver"},
		{"stray candidate→version entry", put(bucketVersionsByCand, versionByCandidateKey(c2, m1, 1), nil), "versions_by_candidate"},
		{"version without id index", del(bucketVersionsByID, pairKey(p, 1)), "no versions_by_id entry"},
		{"alias to no version", put(bucketAliases, idStrKey(m1, "champion"), idKey(99)), "alias"},
		{"token without hash index", del(bucketTokensByHash, tokHash), "no tokens_by_hash entry"},
		{"hash index to nowhere", put(bucketTokensByHash, make([]byte, 32), []byte("ghost")), "tokens_by_hash"},
		{"undecodable token", put(bucketTokens, []byte("tok1"), []byte("{")), "tokens"},
		{"malformed alias value", put(bucketAliases, idStrKey(m1, "x"), []byte{1}), "aliases"},
		{"missing aliases bucket", func(tx *bolt.Tx) error { return tx.Bucket(bucketRoot).DeleteBucket(bucketAliases) }, "v1/aliases missing"},
		{"counter behind", put(bucketCounters, projectCounterKey(pop.p.ID, counterModel), idKey(1)), "counter"},
		{"file under a file", func(tx *bolt.Tx) error {
			return putJSON(bk(tx, bucketFiles), idStrKey(c1, "c/x"), &metadata.File{OwnerID: c1, Path: "c/x"})
		}, "ancestor"},
		{"file under another key", func(tx *bolt.Tx) error {
			return putJSON(bk(tx, bucketFiles), idStrKey(c1, "d"), &metadata.File{OwnerID: c1, Path: "e"})
		}, "file"},
		{"missing bucket", func(tx *bolt.Tx) error { return tx.Bucket(bucketRoot).DeleteBucket(bucketTags) }, "v1/tags missing"},
		{"db_version behind", func(tx *bolt.Tx) error { return writeDBVersion(tx, 0) }, "db_version"},
		{"short signing key", put(bucketSettings, settingSigningKey, []byte("0123456789")), "signing_key has 10 bytes"},
		{"unknown setting", put(bucketSettings, []byte("colour"), []byte("blue")), "unknown setting"},
		{"missing settings bucket", func(tx *bolt.Tx) error { return tx.Bucket(bucketRoot).DeleteBucket(bucketSettings) }, "v1/settings missing"},
		{"logged model without lmid index", del(bucketLoggedModelsByLMID, pop.lm.LMID[:]), "no logged_models_by_lmid entry"},
		{"logged model order entry to nowhere", put(bucketLoggedModelsByMdl, candidateByModelKey(m1, 0, 999), nil), "logged_models_by_model"},
		{"logged model metric rank missing", del(bucketLMsByMetric, metricRankKey(m1, latestMetric{key: "acc", value: 0.9}, pop.lm.ID)), "no lms_by_metric entry"},
		{"version of a logged model without its owner index", del(bucketVersionsByCand, versionByCandidateKey(pop.lm.ID, m1, pop.v3.Seq)), "no versions_by_candidate entry"},
		{"logged model record gone", del(bucketLoggedModels, idKey(pop.lm.ID)), "logged_models_by_lmid"},
		{"import record under another key", func(tx *bolt.Tx) error {
			bad := *pop.rec
			bad.SourceID = "other"
			return putJSON(bk(tx, bucketImports), importKey(pop.p.ID, pop.rec.Source, pop.rec.Kind, pop.rec.SourceID), &bad)
		}, "stored under another key"},
		{"import record of no project", func(tx *bolt.Tx) error {
			bad := *pop.rec
			bad.Project = 99
			return putJSON(bk(tx, bucketImports), importKey(99, bad.Source, bad.Kind, bad.SourceID), &bad)
		}, "project 99"},
		{"import record of an unknown state", func(tx *bolt.Tx) error {
			bad := *pop.rec
			bad.State = "half"
			return putJSON(bk(tx, bucketImports), importKey(pop.p.ID, bad.Source, bad.Kind, bad.SourceID), &bad)
		}, "state"},
		{"undecodable import record", put(bucketImports, importKey(pop.p.ID, "s", metadata.ImportRun, "x"), []byte("{")), "imports"},
		{"missing imports bucket", func(tx *bolt.Tx) error { return tx.Bucket(bucketRoot).DeleteBucket(bucketImports) }, "v1/imports missing"},
		{"run input of a missing dataset", func(tx *bolt.Tx) error { return bk(tx, bucketDatasets).Delete(datasetKey(m1, "eval", "d")) }, "dataset"},
	}
	rollback := errors.New("rollback")
	for _, tc := range cases {
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := tc.corrupt(tx); err != nil {
				t.Fatalf("%s: breaking: %v", tc.name, err)
			}
			err := verifyTx(t.Context(), tx)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Verify = %v, want ErrCorrupt mentioning %q", tc.name, err, tc.want)
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	must(t, s.Verify(t.Context()))
}
