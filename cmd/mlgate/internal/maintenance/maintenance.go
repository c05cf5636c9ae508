// Package maintenance is the library behind mlgate's storage maintenance commands: Fsck cross-checks
// metadata against every configured backend and repairs what is safe to repair, PlanMigration and
// Migrate move files from one backend to another, and Health and RoundTrip probe one backend.
//
// Fsck finds blobs that no file row references (left by a crash between storing a blob and committing
// its row), file rows whose blob is missing or has the wrong size, leftovers in a backend's staging
// area, broken metadata indexes, and rows on backends the configuration no longer declares. With Repair
// it removes what is safe to remove: unreferenced blobs and staging leftovers. It never deletes
// metadata: a row without its blob is reported for a human to decide.
//
// Migrate keeps every row pointing at a complete, verified copy at every moment, so a migration that
// is killed is resumed by running it again; see Migrate.
//
// Fsck and Migrate need the metadata store to themselves (cmd holds its lock, so no server writes
// meanwhile); the probes work beside a running server. Nothing here prints: results come back as values,
// and progress through the hooks in MigrateOptions, for the command to show.
package maintenance

import (
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

// Backend is one configured backend.
type Backend struct {
	Name string
	// Blobs is the backend as everything uses it, wrapped by backends.Checked.
	Blobs *backends.CheckedBackend
	// Staging is the raw backend's own staging area (localfs), which Fsck checks too; nil when it keeps
	// none.
	Staging StagingSweeper
}

// Storage is the metadata store and the configured backends, what Fsck and migrations work on.
type Storage struct {
	Store    metadata.Store
	Backends []Backend // in config order
	// Default is the backend of rows that record none: rows written before backends were recorded
	// per file.
	Default string
}

// Backend returns the configured backend named name, nil when there is none.
func (s *Storage) Backend(name string) *Backend {
	for i := range s.Backends {
		if s.Backends[i].Name == name {
			return &s.Backends[i]
		}
	}
	return nil
}

// resolve maps a row's recorded backend to a configured name: "" is the default backend.
func (s *Storage) resolve(recorded string) string {
	if recorded == "" {
		return s.Default
	}
	return recorded
}
