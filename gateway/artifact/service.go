// Package artifact is the one service that stores, replaces, deletes and serves the files of
// candidates and logged models, for every surface that touches them (the package API, the
// mlflow-artifacts proxy, the web UI). It owns the order of writes that keeps files whole: bytes are stored, verified and only then
// committed in one metadata transaction, and a blob that lost its row is deleted, now or after the
// downloads still reading it end.
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/metadata"
)

// Deps is what the service needs from its surroundings.
type Deps struct {
	Store metadata.Store
	// Current returns the Storage of work that runs outside a request; a request uses the one it pinned
	// in its context with WithStorage.
	Current func() Storage
	Log     *slog.Logger
	// MaxFileSize is the largest file an upload may store, in bytes.
	MaxFileSize int64
	// DeletionDelay, for a store that several processes share (one that implements
	// metadata.BlobDeletionQueue), is the least time a replaced or deleted blob outlives its row, and the
	// length of the lease a process holds on the blobs it still streams (see RunDeletions). 0 means
	// DefaultDeletionDelay. A store of one process ignores it: that process counts its readers exactly.
	DeletionDelay time.Duration
}

// DefaultDeletionDelay is Deps.DeletionDelay's default. Downloads that last longer keep their blob by
// their process's lease; the delay only has to outlast a lease renewal (a fifth of it) missed because
// the database was briefly unreachable, and a download that was on its way to another replica.
const DefaultDeletionDelay = 5 * time.Minute

// Service stores and serves the files of candidates and logged models. It is safe for concurrent use.
type Service struct {
	store       metadata.Store
	current     func() Storage
	log         *slog.Logger
	maxFileSize int64
	readers     blobReaders // downloads in progress, which a replaced blob outlives

	// queue, when the store is shared by several processes, takes the deletions of replaced and deleted
	// blobs (see RunDeletions); nil when this process owns the store and deletes them itself.
	queue         metadata.BlobDeletionQueue
	deletionDelay time.Duration
	now           func() time.Time // the clock of queued deletions; tests replace it
}

// New builds the service.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.DeletionDelay <= 0 {
		d.DeletionDelay = DefaultDeletionDelay
	}
	a := &Service{store: d.Store, current: d.Current, log: d.Log, maxFileSize: d.MaxFileSize, deletionDelay: d.DeletionDelay,
		now: time.Now}
	if q, ok := d.Store.(metadata.BlobDeletionQueue); ok {
		a.queue = q
	}
	return a
}

// BlobInUse reports whether a download reads the blob key, or its deletion waits for the downloads
// reading it to end. A sweep of unreferenced blobs must leave such a blob alone: its deletion is
// already due, when the last download ends.
func (a *Service) BlobInUse(key string) bool { return a.readers.inUse(key) }

// MaxFileSize is the per-file limit uploads are held to.
func (a *Service) MaxFileSize() int64 { return a.maxFileSize }

// Storage returns the Storage pinned for the request of ctx, else the current one.
func (a *Service) Storage(ctx context.Context) Storage {
	if st, ok := ctx.Value(storageCtxKey{}).(Storage); ok {
		return st
	}
	return a.current()
}

// route picks the backend a new file of a candidate or logged model is stored on: Storage.ForUpload with
// its model's project path and slug. Errors are the store's (ErrNotFound for an owner deleted meanwhile).
func (a *Service) route(ctx context.Context, owner uint64) (string, *backends.CheckedBackend, error) {
	modelID, err := metadata.ModelOfOwner(ctx, a.store, owner)
	if err != nil {
		return "", nil, err
	}
	m, err := a.store.Model(ctx, metadata.ModelRef{ID: modelID})
	if err != nil {
		return "", nil, err
	}
	p, err := a.store.Project(ctx, metadata.ProjectRef{ID: m.Project})
	if err != nil {
		return "", nil, err
	}
	name, b := a.Storage(ctx).ForUpload(p.Path, m.Name)
	return name, b, nil
}

// backendOf returns the backend holding f: the one its row records, whatever the routes say now.
// An unknown backend is an error wrapping backends.ErrUnavailable.
func (a *Service) backendOf(ctx context.Context, f *metadata.File) (*backends.CheckedBackend, error) {
	b, err := a.Storage(ctx).Get(f.Backend)
	if err != nil {
		return nil, fmt.Errorf("file %q: %w", f.Path, err)
	}
	return b, nil
}

// Upload is one incoming file.
type Upload struct {
	OwnerID     uint64    // the candidate or logged model the file belongs to
	Path        string    // validated file path inside the owner (candidate or logged model)
	Body        io.Reader // already limited to the configured maximum size (OpenUpload does)
	Size        int64     // -1 when unknown
	ContentType string
	SHA256      string // expected lowercase hex digest; "" when the client gave none

	// For a file whose upload creates its owner (the first file of a package version), OwnerID is an id
	// the store reserved, Route names where the owner will be (its model does not exist yet either), and
	// CreateOwner creates it inside the transaction that commits the file, so that the owner appears with
	// its first file or not at all. Both are nil for an owner that exists.
	Route       *UploadRoute
	CreateOwner func(ctx context.Context) error

	// AlsoCommit, when set, runs inside the transaction that commits the file's row, so that what it
	// writes (an importer's journal record) becomes visible with the file or not at all. Its error rolls
	// the file back. It runs even when identical bytes are already at the path.
	AlsoCommit func(ctx context.Context) error
}

// UploadRoute is what Storage.ForUpload routes a new file by: its project's path and its model's name.
type UploadRoute struct{ ProjectPath, ModelName string }

// Store streams u into a new blob, then commits its metadata row, replacing any earlier file at the
// same path. Identical bytes at the same path change nothing. On any failure nothing becomes visible
// and the new blob is removed. Errors: backends.ErrChecksum and ErrSizeMismatch for a body that does not
// match what the client declared, httpapi.ErrTooLarge from the body, backends.ErrUnavailable, and
// metadata.ErrConflict for a file/directory clash, and u.CreateOwner's. The file goes to the backend
// Storage.ForUpload picks, and its row records that backend. Storage hands out only backends behind
// backends.Checked, which hashes every upload, so the row's sha256 is always the one of the bytes stored.
func (a *Service) Store(ctx context.Context, u Upload) (*metadata.File, error) {
	var name string
	var backend *backends.CheckedBackend
	if u.Route != nil {
		name, backend = a.Storage(ctx).ForUpload(u.Route.ProjectPath, u.Route.ModelName)
	} else {
		var err error
		if name, backend, err = a.route(ctx, u.OwnerID); err != nil {
			return nil, err
		}
	}
	key := blobkey.File(u.OwnerID)
	info, err := backend.Put(ctx, key, u.Body, u.Size, backends.PutOptions{ContentType: u.ContentType, SHA256: u.SHA256})
	if err != nil {
		return nil, err
	}
	if u.CreateOwner != nil || u.AlsoCommit != nil {
		inTx := func(ctx context.Context) error {
			if u.CreateOwner != nil {
				if err := u.CreateOwner(ctx); err != nil {
					return err
				}
			}
			if u.AlsoCommit != nil {
				return u.AlsoCommit(ctx)
			}
			return nil
		}
		return a.commitInTx(ctx, backend, inTx, &metadata.File{
			OwnerID:     u.OwnerID,
			Path:        u.Path,
			Size:        info.Size,
			SHA256:      info.SHA256,
			ContentType: u.ContentType,
			BlobKey:     key,
			Backend:     name,
		})
	}
	return a.commit(ctx, backend, &metadata.File{
		OwnerID:     u.OwnerID,
		Path:        u.Path,
		Size:        info.Size,
		SHA256:      info.SHA256,
		ContentType: u.ContentType,
		BlobKey:     key,
		Backend:     name,
	})
}

// commit makes f, whose blob is stored and verified on backend, the file at its path: identical bytes
// at the path keep the existing row (and drop the new blob), otherwise the row is inserted or replaces
// the old one, whose blob is deleted once no download reads it. On failure the new blob is deleted, so
// nothing becomes visible. This is the one place where a stored blob becomes a visible file. Errors are
// the store's: metadata.ErrConflict for a file/directory clash, ErrNotFound for a candidate deleted
// meanwhile.
func (a *Service) commit(ctx context.Context, backend backends.Backend, f *metadata.File) (*metadata.File, error) {
	if existing, err := a.store.File(ctx, f.OwnerID, f.Path); err == nil &&
		existing.SHA256 == f.SHA256 && existing.Size == f.Size {
		a.discardBlob(backend, f.BlobKey)
		return existing, nil
	}
	var replaced *metadata.File
	err := a.inRowTx(ctx, func(ctx context.Context) error {
		var err error
		if replaced, err = a.store.CommitFile(ctx, f, true); err != nil {
			return err
		}
		return a.queueDeletions(ctx, replaced)
	})
	if err != nil {
		a.discardBlob(backend, f.BlobKey)
		return nil, err
	}
	a.discardReplaced(ctx, replaced)
	return f, nil
}

// inRowTx runs fn, which changes file rows, in one transaction when the store is shared, so that a row
// replaced or deleted and its queued blob deletion commit together; otherwise directly, so that a single
// write keeps the store's batched commit path.
func (a *Service) inRowTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if a.queue == nil {
		return fn(ctx)
	}
	return a.store.Update(ctx, fn)
}

// queueDeletions queues, inside the transaction of ctx, the deletion of the blobs of rows that the
// transaction replaces or deletes (nil rows are skipped), when the store is shared. Each waits
// deletionDelay, and at least a redirect's expiry plus its grace on a backend that redirects downloads:
// a presigned URL handed out on any replica before the change may still be fetching the blob. Errors
// are the store's.
func (a *Service) queueDeletions(ctx context.Context, rows ...*metadata.File) error {
	if a.queue == nil {
		return nil
	}
	now := a.now()
	for _, f := range rows {
		if f == nil {
			continue
		}
		delay := a.deletionDelay
		if b, err := a.backendOf(ctx, f); err == nil {
			if p, ok := b.Redirect(); ok {
				delay = max(delay, p.Expiry+p.Grace)
			}
		}
		if err := a.queue.QueueBlobDeletion(ctx, f.Backend, f.BlobKey, now.Add(delay)); err != nil {
			return err
		}
	}
	return nil
}

// commitInTx is commit for a file whose row must commit with other writes (creating its owner, which
// does not exist yet; an importer's journal record): inTx and the file's row commit in one transaction,
// so a failure anywhere leaves neither (and the new blob is deleted). Errors are inTx's and the store's.
func (a *Service) commitInTx(ctx context.Context, backend backends.Backend, inTx func(context.Context) error, f *metadata.File) (*metadata.File, error) {
	var kept, replaced *metadata.File
	err := a.store.Update(ctx, func(ctx context.Context) error {
		kept, replaced = nil, nil
		if err := inTx(ctx); err != nil {
			return err
		}
		// A concurrent first upload of the same path may have committed first.
		if existing, err := a.store.File(ctx, f.OwnerID, f.Path); err == nil &&
			existing.SHA256 == f.SHA256 && existing.Size == f.Size {
			kept = existing
			return nil
		}
		var err error
		if replaced, err = a.store.CommitFile(ctx, f, true); err != nil {
			return err
		}
		return a.queueDeletions(ctx, replaced)
	})
	if err != nil || kept != nil {
		a.discardBlob(backend, f.BlobKey)
		return kept, err
	}
	a.discardReplaced(ctx, replaced)
	return f, nil
}

// discardReplaced deletes the blob of a row that a commit replaced or deleted (nil: none), on that
// row's backend, once the downloads reading it have ended. With a shared store the commit queued the
// deletion instead (queueDeletions), and RunDeletions carries it out.
func (a *Service) discardReplaced(ctx context.Context, replaced *metadata.File) {
	if replaced == nil || a.queue != nil {
		return
	}
	b, err := a.backendOf(ctx, replaced)
	if err != nil {
		a.log.Warn("could not delete a replaced blob; fsck --repair on its backend will", "key", replaced.BlobKey, "err", err)
		return
	}
	a.readers.discard(replaced.BlobKey, func() { a.discardBlob(b, replaced.BlobKey) })
}

// discardBlob deletes a blob that no metadata row references. It runs on a fresh context because the
// request's may already be cancelled; a failure only leaves an orphan that fsck finds and removes.
func (a *Service) discardBlob(b backends.Backend, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Delete(ctx, key); err != nil && !errors.Is(err, backends.ErrNotFound) {
		a.log.Warn("could not delete unreferenced blob; fsck --repair will", "key", key, "err", err)
	}
}

// Delete removes a file row, then its blob from the backend the row records. A row whose backend is no
// longer configured is still deleted (the user asked for it gone); its blob stays for fsck to find.
// metadata.ErrNotFound for a file that does not exist.
func (a *Service) Delete(ctx context.Context, owner uint64, filePath string) error {
	var f *metadata.File
	err := a.inRowTx(ctx, func(ctx context.Context) error {
		var err error
		if f, err = a.store.DeleteFile(ctx, owner, filePath); err != nil {
			return err
		}
		return a.queueDeletions(ctx, f)
	})
	if err != nil {
		return err
	}
	a.discardReplaced(ctx, f)
	return nil
}

// deletePage is how many rows one round of DeleteTree removes.
const deletePage = 1000

// DeleteTree deletes the file at p, or every file under the directory p ("" = all the owner's files). A
// path that holds nothing is not an error, so a retried delete answers like the first one. Errors are
// the store's and Delete's.
func (a *Service) DeleteTree(ctx context.Context, owner uint64, p string) error {
	if p != "" {
		err := a.Delete(ctx, owner, p)
		if !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
	}
	for {
		// Always the first page: the rows it returned are gone by the next round.
		files, _, err := a.store.ListFiles(ctx, owner, p, metadata.Page{Limit: deletePage})
		if err != nil || len(files) == 0 {
			return err
		}
		for _, f := range files {
			if err := a.Delete(ctx, owner, f.Path); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return err
			}
		}
	}
}

// hashBlob reads a blob once and returns its sha256.
// HashFile reads f's blob back from its backend and returns the sha256 of its bytes, so that a check
// does not take the row's word for them. Errors: backends.ErrNotFound for a missing blob,
// backends.ErrUnavailable, and the error of an unknown backend.
func (a *Service) HashFile(ctx context.Context, f *metadata.File) (string, error) {
	b, err := a.backendOf(ctx, f)
	if err != nil {
		return "", err
	}
	return a.hashBlob(ctx, b, f.BlobKey)
}

func (a *Service) hashBlob(ctx context.Context, backend backends.Backend, key string) (string, error) {
	rc, _, err := backend.Get(ctx, key, backends.All)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DeleteRows runs remove, which deletes file rows in the store and returns them (a logged model deleted
// with its files), and then deletes their blobs, each once no download reads it; with a shared store
// remove runs in a transaction that also queues the deletions. A blob whose deletion fails is an orphan
// that fsck and the sweeper find. Errors are remove's and the store's; on one, no blob is touched.
func (a *Service) DeleteRows(ctx context.Context, remove func(ctx context.Context) ([]*metadata.File, error)) error {
	var rows []*metadata.File
	err := a.inRowTx(ctx, func(ctx context.Context) error {
		var err error
		if rows, err = remove(ctx); err != nil {
			return err
		}
		return a.queueDeletions(ctx, rows...)
	})
	if err != nil {
		return err
	}
	for _, f := range rows {
		a.discardReplaced(ctx, f)
	}
	return nil
}
