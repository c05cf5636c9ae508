package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// Multipart is a file upload in parts. It names the backend and blob the upload completes into; the
// caller keeps it (the mlflow-artifacts proxy seals it into the upload id it hands the client), so the
// service keeps no state between calls.
type Multipart struct {
	Backend  string // the name the file's row will record
	Key      string // the blob the upload completes into
	UploadID string // the backend's upload id
}

// defaultMaxParts applies when a backend does not say: S3's limit.
const defaultMaxParts = 10000

// CreateMultipart starts an upload of the file at path of a candidate or logged model in parts parts, on the backend the
// routes choose for it. Errors: httpapi.ErrBadRequest for parts outside 1..the backend's part limit,
// the store's for an unknown owner, the backend's.
func (a *Service) CreateMultipart(ctx context.Context, owner uint64, path string, parts int64) (Multipart, error) {
	name, backend, err := a.route(ctx, owner)
	if err != nil {
		return Multipart{}, err
	}
	maxParts := defaultMaxParts
	if d, err := backend.Describe(ctx); err == nil && d.MaxParts > 0 {
		maxParts = d.MaxParts
	}
	if parts < 1 || parts > int64(maxParts) {
		return Multipart{}, fmt.Errorf("%w: num_parts must be 1..%d, got %d", httpapi.ErrBadRequest, maxParts, parts)
	}
	key := blobkey.File(owner)
	id, err := backend.CreateMultipart(ctx, key, backends.PutOptions{ContentType: CleanContentType("", path)})
	if err != nil {
		return Multipart{}, err
	}
	return Multipart{Backend: name, Key: key, UploadID: id}, nil
}

// PutPart stores part n of m from body, which must have size bytes. Errors: httpapi.ErrTooLarge for a
// part above the file limit, backends.ErrUploadNotFound for an upload completed or aborted,
// backends.ErrUnavailable when m's backend is no longer configured, and the body's and backend's.
func (a *Service) PutPart(ctx context.Context, m Multipart, n int, body io.Reader, size int64) (backends.Part, error) {
	if size > a.maxFileSize {
		return backends.Part{}, fmt.Errorf("%w: part of %d bytes exceeds the file limit of %d bytes", httpapi.ErrTooLarge, size, a.maxFileSize)
	}
	backend, err := a.Storage(ctx).Get(m.Backend)
	if err != nil {
		return backends.Part{}, err
	}
	return backend.PutPart(ctx, m.Key, m.UploadID, n, ClientErrors(body), size)
}

// CompleteMultipart assembles m's parts and commits the file at path of an owner with Store's
// semantics (identical bytes change nothing; a replaced blob is deleted). A retry of a complete that
// went through finds the file already committed and succeeds again. Errors: backends.ErrInvalidPart for
// a missing or mismatched part, httpapi.ErrTooLarge for a file above the limit (its blob is deleted),
// backends.ErrUploadNotFound for an upload that was aborted, metadata.ErrConflict for a file/directory
// clash, backends.ErrUnavailable when m's backend is no longer configured.
func (a *Service) CompleteMultipart(ctx context.Context, owner uint64, path string, m Multipart, parts []backends.Part) (*metadata.File, error) {
	backend, err := a.Storage(ctx).Get(m.Backend)
	if err != nil {
		return nil, err
	}
	info, err := backend.CompleteMultipart(ctx, m.Key, m.UploadID, parts)
	if errors.Is(err, backends.ErrUploadNotFound) {
		if f, ferr := a.store.File(ctx, owner, path); ferr == nil && f.BlobKey == m.Key {
			return f, nil // a retry of a complete that went through
		}
		return nil, fmt.Errorf("multipart upload of %q was aborted or expired: %w", path, err)
	}
	if err != nil {
		return nil, err
	}
	if info.Size > a.maxFileSize {
		a.discardBlob(backend, m.Key)
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", httpapi.ErrTooLarge, info.Size, a.maxFileSize)
	}
	sum := info.SHA256
	if sum == "" {
		// Backends that do not hash on complete (S3) leave it to us: one read of the blob.
		if sum, err = a.hashBlob(ctx, backend, m.Key); err != nil {
			a.discardBlob(backend, m.Key)
			return nil, err
		}
	}
	return a.commit(ctx, backend, &metadata.File{
		OwnerID:     owner,
		Path:        path,
		Size:        info.Size,
		SHA256:      sum,
		ContentType: CleanContentType("", path),
		BlobKey:     m.Key,
		Backend:     m.Backend,
	})
}

// AbortMultipart discards m and its parts. An upload that is already gone is not an error, so a
// client's abort after a failed complete never masks the original error. Errors: the backend's, and
// backends.ErrUnavailable when m's backend is no longer configured.
func (a *Service) AbortMultipart(ctx context.Context, m Multipart) error {
	backend, err := a.Storage(ctx).Get(m.Backend)
	if err != nil {
		return err
	}
	if err := backend.AbortMultipart(ctx, m.Key, m.UploadID); err != nil && !errors.Is(err, backends.ErrUploadNotFound) {
		return err
	}
	return nil
}
