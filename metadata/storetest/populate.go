package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// Populate fills s, through the Store API only, with at least one entity of every kind an export holds
// (metadata.ExportOrder), in the states that make copying them hard: deleted and purged models, a
// candidate deleted with its model, reserved and unused owner ids, deleted versions and tags, NaN and
// infinite metric points, logged models with linked points, datasets, run inputs and outputs, revoked and
// expiring tokens, import records and the signing key. Counters end above the highest number in use, so
// that a copy that keeps entities but loses counters issues different numbers next. It fails t on any
// error.
func Populate(t testing.TB, s metadata.Store) {
	t.Helper()
	ctx := context.Background()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("populate: %s: %v", what, err)
		}
	}
	if _, err := s.SigningKey(ctx); err != nil {
		t.Fatalf("populate: SigningKey: %v", err)
	}
	pa, err := s.EnsureProject(ctx, "team/vision")
	must("EnsureProject", err)
	pb, err := s.EnsureProject(ctx, "team/nlp")
	must("EnsureProject", err)
	_, err = s.EnsureDefaultModel(ctx, pa.ID)
	must("EnsureDefaultModel", err)

	mA := &metadata.Model{Project: pa.ID, DisplayName: "Resnet Exp", Description: "an experiment",
		Tags: []metadata.Tag{{Key: "team", Value: "vision"}, {Key: "a", Value: "1"}}}
	must("CreateModel", s.CreateModel(ctx, mA))
	mB := &metadata.Model{Project: pa.ID, Name: "detector", IID: 7, CreatedAt: time.UnixMilli(1_600_000_000_123)}
	must("CreateModel preset iid", s.CreateModel(ctx, mB))
	purged := &metadata.Model{Project: pa.ID, Name: "purged"}
	must("CreateModel", s.CreateModel(ctx, purged))
	must("PurgeModel", s.PurgeModel(ctx, purged.ID))
	mC := &metadata.Model{Project: pb.ID, Name: "bert"}
	must("CreateModel", s.CreateModel(ctx, mC))

	var runs []*metadata.Candidate
	for i, m := range []*metadata.Model{mA, mA, mB, mC, mC} {
		c := &metadata.Candidate{ModelID: m.ID, Name: "run", UserID: "ann", Status: metadata.RunStatus(i % 5),
			StartTime: 1_700_000_000_000 + int64(i), EndTime: int64(i) * 7}
		if i == 1 {
			c.IID = 40
			c.EID = metadata.EID{0xab, byte(i)}
		}
		must("CreateCandidate", s.CreateCandidate(ctx, c, []metadata.Tag{{Key: "mlflow.runName", Value: "r"}, {Key: "gone", Value: "x"}}))
		runs = append(runs, c)
	}
	must("DeleteTag", s.DeleteTag(ctx, runs[0].ID, "gone"))
	_, err = s.ReserveOwnerID(ctx) // drawn and never used: the sequence stays above every owner
	must("ReserveOwnerID", err)

	nan, inf := math.NaN(), math.Inf(1)
	for i, c := range runs {
		metrics := []metadata.Metric{
			{Key: "loss", Value: 1.5, Timestamp: 10, Step: 0},
			{Key: "loss", Value: -0.25, Timestamp: 11, Step: 1},
			{Key: "loss", Value: 0.75, Timestamp: 11, Step: 1}, // same step and time, another value
			{Key: "acc", Value: float64(i) / 3, Timestamp: 12, Step: 2},
			{Key: "odd", Value: nan, Timestamp: 13, Step: 0},
			{Key: "odd", Value: -inf, Timestamp: 14, Step: 1},
			{Key: "odd", Value: inf, Timestamp: 15, Step: -3},
		}
		must("LogBatch", s.LogBatch(ctx, c.ID, []metadata.Param{{Key: "lr", Value: "0.1"}, {Key: "epochs", Value: "3"}},
			metrics, []metadata.Tag{{Key: "stage", Value: "train"}}))
	}

	lm := &metadata.LoggedModel{ModelID: mA.ID, Name: "model", ModelType: "pytorch", SourceRunID: runs[0].ID, UserID: "ann",
		Params: []metadata.Param{{Key: "p", Value: "1"}}, Tags: []metadata.Tag{{Key: "t", Value: "v"}}}
	must("CreateLoggedModel", s.CreateLoggedModel(ctx, lm))
	lm2 := &metadata.LoggedModel{ModelID: mA.ID, Name: "bare"}
	must("CreateLoggedModel", s.CreateLoggedModel(ctx, lm2))
	ready := metadata.LoggedModelReady
	_, err = s.UpdateLoggedModel(ctx, lm.ID, metadata.LoggedModelUpdate{Status: &ready, SetTags: []metadata.Tag{{Key: "u", Value: "w"}}})
	must("UpdateLoggedModel", err)
	must("LogBatch linked", s.LogBatch(ctx, runs[0].ID, nil, []metadata.Metric{
		{Key: "val_acc", Value: 0.9, Timestamp: 20, Step: 1, LoggedModel: lm.LMID, DatasetName: "train", DatasetDigest: "d1"},
		{Key: "val_acc", Value: 0.95, Timestamp: 21, Step: 2, LoggedModel: lm.LMID},
	}, nil))

	ds := func(name string) metadata.DatasetInput {
		return metadata.DatasetInput{Dataset: metadata.Dataset{Name: name, Digest: "d-" + name, SourceType: "local", Source: "/data/" + name,
			Schema: `{"cols":[]}`}, Tags: []metadata.Tag{{Key: "mlflow.data.context", Value: name}}}
	}
	must("LogInputs", s.LogInputs(ctx, runs[0].ID, []metadata.DatasetInput{ds("zeta"), ds("alpha")}, []metadata.LMID{lm2.LMID}))
	must("LogInputs", s.LogInputs(ctx, runs[1].ID, []metadata.DatasetInput{ds("alpha")}, nil))
	must("LogOutputs", s.LogOutputs(ctx, runs[0].ID, []metadata.ModelOutput{{LoggedModel: lm.LMID, Step: 2}}))

	v1 := &metadata.Version{ModelID: mA.ID, CandidateID: runs[0].ID, Description: "first", Tags: []metadata.Tag{{Key: "k", Value: "v"}}}
	must("CreateVersion", s.CreateVersion(ctx, v1))
	v2 := &metadata.Version{ModelID: mA.ID, CandidateID: runs[1].ID}
	must("CreateVersion", s.CreateVersion(ctx, v2))
	v3 := &metadata.Version{ModelID: mA.ID, LoggedModelID: lm.ID, Seq: 5, Semver: "2.0.0-rc.1", Source: "models:/m-x"}
	must("CreateVersion preset seq", s.CreateVersion(ctx, v3))
	v4 := &metadata.Version{ModelID: mA.ID, CandidateID: runs[1].ID}
	must("CreateVersion", s.CreateVersion(ctx, v4))
	must("DeleteVersion", s.DeleteVersion(ctx, metadata.VersionRef{ModelID: mA.ID, Seq: v4.Seq})) // the seq mark stays
	stage := "Production"
	_, err = s.UpdateVersion(ctx, metadata.VersionRef{ModelID: mA.ID, Seq: v1.Seq}, metadata.VersionUpdate{Stage: &stage})
	must("UpdateVersion", err)
	must("SetAlias", s.SetAlias(ctx, mA.ID, "champion", v1.Seq))
	must("SetAlias", s.SetAlias(ctx, mA.ID, "challenger", v3.Seq))
	reserved, err := s.ReserveOwnerID(ctx)
	must("ReserveOwnerID", err)
	_, err = s.EnsurePackageVersion(ctx, pb.ID, "pkg", "1.2.3", reserved)
	must("EnsurePackageVersion", err)

	deleted := metadata.Deleted
	_, err = s.UpdateModel(ctx, mC.ID, metadata.ModelUpdate{Lifecycle: &deleted}) // its runs are deleted with it
	must("UpdateModel", err)

	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, f := range []*metadata.File{
		{OwnerID: runs[0].ID, Path: "model/weights.bin", Size: 3, SHA256: sum("abc"), BlobKey: "c/1/a", ContentType: "application/octet-stream"},
		{OwnerID: runs[0].ID, Path: "model/MLmodel", Size: 1, SHA256: sum("m"), BlobKey: "c/1/b", Backend: "s3"},
		{OwnerID: lm.ID, Path: "artifacts/model.pkl", Size: 2, SHA256: sum("pk"), BlobKey: "c/2/c"},
		{OwnerID: runs[3].ID, Path: "a.txt", Size: 0, SHA256: sum(""), BlobKey: "c/3/d"},
	} {
		_, err := s.CommitFile(ctx, f, false)
		must("CommitFile "+f.Path, err)
	}

	expires := time.UnixMilli(1_900_000_000_000).UTC()
	for _, tok := range []*metadata.Token{
		{ID: "tok-read", Name: "ci", ProjectPath: "team/vision", Scope: metadata.ScopeRead, SecretHash: sum("s1")},
		{ID: "tok-admin", Instance: true, Scope: metadata.ScopeAdmin, SecretHash: sum("s2"), ExpiresAt: expires},
		{ID: "tok-old", ProjectPath: "team/nlp", Scope: metadata.ScopeWrite, SecretHash: sum("s3")},
	} {
		must("CreateToken", s.CreateToken(ctx, tok))
	}
	must("RevokeToken", s.RevokeToken(ctx, "tok-old"))

	for _, r := range []*metadata.ImportRecord{
		{Project: pa.ID, Source: "http://mlflow:5000", Kind: metadata.ImportExperiment, SourceID: "1", TargetID: mA.ID, TargetIID: mA.IID, State: metadata.ImportDone},
		{Project: pa.ID, Source: "http://mlflow:5000", Kind: metadata.ImportMetric, SourceID: "abc/loss", State: metadata.ImportPending, Progress: 10, Note: "half"},
	} {
		must("PutImportRecord", s.PutImportRecord(ctx, r))
	}
}
