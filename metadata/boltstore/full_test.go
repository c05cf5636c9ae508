package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends/backendtest/tmpfs"
	"github.com/mlgate/mlgate/metadata"
)

// TestFullDisk: a commit that finds the filesystem full fails with metadata.ErrInsufficientStorage and
// keeps nothing; the database stays readable and consistent, and writes succeed again once space
// returns, without reopening it.
func TestFullDisk(t *testing.T) {
	dir := tmpfs.Mount(t, 8<<20)
	path := filepath.Join(dir, "mlgate.db")
	s := openStore(t, path)
	ctx := context.Background()
	p, err := s.EnsureProject(ctx, "team/full")
	if err != nil {
		t.Fatal(err)
	}
	filler := tmpfs.Fill(t, dir)
	description := strings.Repeat("d", metadata.MaxDescriptionLen)
	var created int
	for ; ; created++ {
		err := s.CreateModel(ctx, &metadata.Model{Project: p.ID, DisplayName: fmt.Sprintf("m%d", created), Description: description})
		if err != nil {
			if !errors.Is(err, metadata.ErrInsufficientStorage) {
				t.Fatalf("write %d on a full disk: %v, want ErrInsufficientStorage", created, err)
			}
			break
		}
		if created > 10000 {
			t.Fatal("10000 models fit on a full disk")
		}
	}
	models, _, err := s.ListModels(ctx, p.ID, metadata.Page{Limit: 100000})
	if err != nil || len(models) != created {
		t.Fatalf("after the failed write: %d models (%v), want the %d committed", len(models), err, created)
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify on a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateModel(ctx, &metadata.Model{Project: p.ID, DisplayName: "after", Description: description}); err != nil {
		t.Fatalf("write once space returned: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path)
	defer s.Close()
	if err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify after reopening: %v", err)
	}
	if _, err := s.Model(ctx, metadata.ModelRef{Project: p.ID, DisplayName: "after"}); err != nil {
		t.Fatalf("the write after the full disk: %v", err)
	}
}
