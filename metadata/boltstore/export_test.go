package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/storetest"
	bolt "go.etcd.io/bbolt"
)

// TestExportCoversEveryBucket fails when a bucket is added without deciding whether Export copies it
// (a record) or leaves it to the target (an index): a bucket forgotten here is data a migration loses.
func TestExportCoversEveryBucket(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	known := map[string]bool{}
	for _, b := range append(append([][]byte(nil), exportedBuckets...), derivedBuckets...) {
		known[string(b)] = true
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRoot).ForEachBucket(func(name []byte) error {
			if !known[string(name)] {
				t.Errorf("bucket %s is neither exported nor derived: add it to exportedBuckets (and Export) or derivedBuckets", name)
			}
			delete(known, string(name))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range known {
		t.Errorf("bucket %s is listed but does not exist", name)
	}
}

// TestExportOrderAndEstimate exports a populated store: kinds come in metadata.ExportOrder, each once,
// and EstimateRecords is not below the records exported.
func TestExportOrderAndEstimate(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.Populate(t, s)
	order := map[metadata.RecordKind]int{}
	for i, k := range metadata.ExportOrder {
		order[k] = i
	}
	var n int64
	last := -1
	err = s.Export(t.Context(), func(r metadata.Record) error {
		n++
		i, ok := order[r.Kind()]
		if !ok || i < last {
			t.Errorf("record %d: %s out of order", n, r)
		}
		last = i
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if est, err := s.EstimateRecords(t.Context()); err != nil || est < n {
		t.Errorf("EstimateRecords: %d, %v; exported %d", est, err, n)
	}
}
