package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

const importCols = `project, source, kind, source_id, target_id, target_iid, state, progress, note, updated_at`

func scanImportRecord(row pgx.Row) (*metadata.ImportRecord, error) {
	var r metadata.ImportRecord
	if err := row.Scan(&r.Project, &r.Source, &r.Kind, &r.SourceID, &r.TargetID, &r.TargetIID, &r.State, &r.Progress,
		&r.Note, &r.UpdatedAt); err != nil {
		return nil, err
	}
	r.UpdatedAt = r.UpdatedAt.UTC()
	return &r, nil
}

// PutImportRecord implements metadata.Store: it inserts or replaces the record of (r.Project, r.Source,
// r.Kind, r.SourceID) and fills UpdatedAt with now; r is changed only on success. ErrNotFound for an
// unknown project; ErrInvalid for what metadata.ValidateImportRecord refuses.
func (s *Store) PutImportRecord(ctx context.Context, r *metadata.ImportRecord) error {
	if r == nil {
		return s.refuse(ctx, fmt.Errorf("nil import record: %w", metadata.ErrInvalid))
	}
	if err := metadata.ValidateImportRecord(r); err != nil {
		return s.refuse(ctx, err)
	}
	out := *r
	out.UpdatedAt = s.now()
	err := s.update(ctx, func(tx pgx.Tx) error {
		if _, err := getProject(ctx, tx, out.Project); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO import_records (`+importCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (project, source, kind, source_id) DO UPDATE SET target_id = EXCLUDED.target_id,
			target_iid = EXCLUDED.target_iid, state = EXCLUDED.state, progress = EXCLUDED.progress, note = EXCLUDED.note,
			updated_at = EXCLUDED.updated_at`,
			out.Project, out.Source, out.Kind, out.SourceID, out.TargetID, out.TargetIID, out.State, out.Progress, out.Note,
			out.UpdatedAt)
		return err
	})
	if err != nil {
		return err
	}
	*r = out
	return nil
}

// ImportRecord implements metadata.Store. Arguments no record can have (an unknown kind, an empty or
// over-long source) find nothing: ErrNotFound.
func (s *Store) ImportRecord(ctx context.Context, project int64, source string, kind metadata.ImportKind, sourceID string) (*metadata.ImportRecord, error) {
	if err := metadata.ValidateImportKey(source, kind, sourceID); err != nil {
		// Such a record cannot have been stored, and a lookup that finds nothing is a 404, not a 400.
		return nil, fmt.Errorf("import record: %v: %w", err, metadata.ErrNotFound)
	}
	var r *metadata.ImportRecord
	err := s.view(ctx, func(tx pgx.Tx) error {
		var err error
		r, err = scanImportRecord(tx.QueryRow(ctx, `SELECT `+importCols+` FROM import_records
			WHERE project = $1 AND source = $2 AND kind = $3 AND source_id = $4`, project, source, kind, sourceID))
		return notFound(err, "import record %s %q from %q in project %d", kind, sourceID, source, project)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ListImportRecords implements metadata.Store: a project's records ordered by source, kind, source id (byte
// order), of one source unless source is "" and of one kind unless kind is "", with the next page's token
// ("" on the last page). ErrNotFound for an unknown project; ErrInvalid for a source or kind no record can
// have, or a token of another listing.
func (s *Store) ListImportRecords(ctx context.Context, project int64, source string, kind metadata.ImportKind, p metadata.Page) ([]*metadata.ImportRecord, string, error) {
	if source != "" {
		if err := metadata.ValidateImportSource(source); err != nil {
			return nil, "", err
		}
	}
	if kind != "" && !kind.Valid() {
		return nil, "", fmt.Errorf("import kind %.30q: want one of %v: %w", kind, metadata.ImportKinds, metadata.ErrInvalid)
	}
	pg, err := newPager(p, "imports", project, source, string(kind))
	if err != nil {
		return nil, "", err
	}
	// The sort key is source NUL kind NUL source id: none of them holds NUL. No record has an empty source,
	// so ("", "", "") is below every record.
	var after [3]string
	if pg.after != nil {
		parts := strings.Split(string(pg.after), "\x00")
		if len(parts) != 3 {
			return nil, "", fmt.Errorf("page token: %w", metadata.ErrInvalid)
		}
		copy(after[:], parts)
	}
	var out []*metadata.ImportRecord
	err = s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getProject(ctx, tx, project); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+importCols+` FROM import_records
			WHERE project = $1 AND ($2 = '' OR source = $2) AND ($3 = '' OR kind = $3)
			AND (source, kind, source_id) > ($4, $5, $6) ORDER BY source, kind, source_id LIMIT $7`,
			project, source, string(kind), after[0], after[1], after[2], pg.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.ImportRecord, error) { return scanImportRecord(r) })
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(r *metadata.ImportRecord) []byte {
		return []byte(r.Source + "\x00" + string(r.Kind) + "\x00" + r.SourceID)
	})
	return out, next, nil
}
