package localfs

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/streamio"
)

// record is an upload's upload.json.
type record struct {
	Key         string    `json:"key"`
	ContentType string    `json:"content_type,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Created     time.Time `json:"created"`
}

func uploadDir(id string) string { return uploadsDir + "/" + id }

func partName(id string, n int) string { return fmt.Sprintf("%s/%05d", uploadDir(id), n) }

var errNoUpload = backends.ErrUploadNotFound

// readRecord loads the record of upload id and checks that it targets key: an id used with another
// key is as unknown as a missing one, as on S3. Errors: ErrUploadNotFound, ErrUnavailable.
func (b *Backend) readRecord(key, id string) (record, error) {
	var rec record
	if err := b.check(); err != nil {
		return rec, err
	}
	// The id comes from clients; only our own shape may become a path.
	if !uploadIDPattern.MatchString(id) {
		return rec, fmt.Errorf("upload %q: %w", id, errNoUpload)
	}
	data, err := b.root.ReadFile(native(uploadDir(id) + "/" + recordName))
	if err != nil {
		if isMissing(err) {
			return rec, fmt.Errorf("upload %q: %w", id, errNoUpload)
		}
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("upload %q: corrupt record: %w", id, err)
	}
	if rec.Key != key {
		return rec, fmt.Errorf("upload %q is for another key: %w", id, errNoUpload)
	}
	return rec, nil
}

// CreateMultipart starts an upload to key. The upload directory appears complete with its record or
// not at all. Errors: ErrInsufficientStorage when the filesystem is full, ErrUnavailable after Close,
// filesystem errors.
func (b *Backend) CreateMultipart(_ context.Context, key string, opts backends.PutOptions) (_ string, err error) {
	defer markFull(&err)
	if err := b.check(); err != nil {
		return "", err
	}
	id := randomHex(16)
	rec, err := json.Marshal(record{Key: key, ContentType: opts.ContentType, SHA256: opts.SHA256, Created: time.Now().UTC()})
	if err != nil {
		return "", err
	}
	tmpDir := stagingDir + "/upload-" + id
	if err := b.root.Mkdir(native(tmpDir), dirPerm); err != nil {
		return "", fmt.Errorf("localfs create multipart: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = b.root.RemoveAll(native(tmpDir))
		}
	}()
	f, err := b.root.OpenFile(native(tmpDir+"/"+recordName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return "", fmt.Errorf("localfs create multipart: %w", err)
	}
	_, err = f.Write(rec)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = b.syncDir(tmpDir)
	}
	if err == nil {
		err = b.root.Rename(native(tmpDir), native(uploadDir(id)))
	}
	if err == nil {
		committed = true
		err = b.syncDir(uploadsDir)
	}
	if err != nil {
		return "", fmt.Errorf("localfs create multipart: %w", err)
	}
	return id, nil
}

// PutPart writes part n to a staging file with its md5 as header, then renames it into the upload,
// replacing an earlier part n. Errors: ErrUploadNotFound (checked before and after the body, so an
// abort meanwhile is reported), ErrSizeMismatch, ctx's or r's error, ErrInsufficientStorage when the
// filesystem is full, ErrUnavailable after Close.
func (b *Backend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (_ backends.Part, err error) {
	defer markFull(&err)
	if _, err := b.readRecord(key, uploadID); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	if n < 1 || n > maxParts {
		return backends.Part{}, fmt.Errorf("localfs put part: part number %d: %w", n, backends.ErrInvalidPart)
	}
	tmp, err := b.createTemp("part")
	if err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	defer tmp.discard()
	if _, err := tmp.f.Seek(partHeaderLen, io.SeekStart); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	h := md5.New()
	written, err := writeBody(ctx, hashWriter{w: tmp.f, h: h}, r, size)
	if err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	etag := hex.EncodeToString(h.Sum(nil))
	if _, err := tmp.f.WriteAt([]byte(etag+"\n"), 0); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	if _, err := tmp.seal(); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	b.uploadsMu.Lock()
	defer b.uploadsMu.Unlock()
	if _, err := b.readRecord(key, uploadID); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	if err := b.root.Rename(native(tmp.name), native(partName(uploadID, n))); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	tmp.done = true
	if err := b.syncDir(uploadDir(uploadID)); err != nil {
		return backends.Part{}, fmt.Errorf("localfs put part: %w", err)
	}
	return backends.Part{Number: n, Size: written, ETag: etag}, nil
}

// openPart opens a stored part, positioned at its data. Errors: fs.ErrNotExist, a corrupt header.
func (b *Backend) openPart(id string, n int) (*os.File, backends.Part, error) {
	f, err := b.root.Open(native(partName(id, n)))
	if err != nil {
		return nil, backends.Part{}, err
	}
	var hdr [partHeaderLen]byte
	fi, err := f.Stat()
	if err == nil {
		_, err = io.ReadFull(f, hdr[:])
	}
	if err == nil && hdr[partHeaderLen-1] != '\n' {
		err = errors.New("corrupt part header")
	}
	if err != nil {
		_ = f.Close()
		return nil, backends.Part{}, fmt.Errorf("part %d: %w", n, err)
	}
	return f, backends.Part{Number: n, Size: fi.Size() - partHeaderLen, ETag: string(hdr[:partHeaderLen-1])}, nil
}

// ListParts returns the upload's parts in number order. Errors: ErrUploadNotFound, ErrUnavailable
// after Close.
func (b *Backend) ListParts(_ context.Context, key, uploadID string) ([]backends.Part, error) {
	if _, err := b.readRecord(key, uploadID); err != nil {
		return nil, fmt.Errorf("localfs list parts: %w", err)
	}
	d, err := b.root.Open(native(uploadDir(uploadID)))
	if err != nil {
		if isMissing(err) {
			return nil, fmt.Errorf("localfs list parts: %w", errNoUpload)
		}
		return nil, fmt.Errorf("localfs list parts: %w", err)
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return nil, fmt.Errorf("localfs list parts: %w", err)
	}
	parts := make([]backends.Part, 0, len(names))
	for _, name := range names {
		if !partNamePattern.MatchString(name) {
			continue
		}
		n, _ := strconv.Atoi(name)
		f, p, err := b.openPart(uploadID, n)
		if err != nil {
			if isMissing(err) { // aborted or completed meanwhile
				return nil, fmt.Errorf("localfs list parts: %w", errNoUpload)
			}
			return nil, fmt.Errorf("localfs list parts: %w", err)
		}
		_ = f.Close()
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b backends.Part) int { return a.Number - b.Number })
	return parts, nil
}

// CompleteMultipart concatenates the parts into a staging file (hashing it), fsyncs it and renames
// it to key, then removes the upload. Errors: ErrUploadNotFound; ErrInvalidPart for a missing part,
// a wrong ETag, a middle part below the minimum size or parts out of order; ErrChecksum when the
// upload's PutOptions.SHA256 differs (the upload stays, to be aborted); ErrInvalidKey on a path clash;
// ctx's error; ErrInsufficientStorage when the filesystem is full; ErrUnavailable after Close. On error
// nothing appears under key.
func (b *Backend) CompleteMultipart(ctx context.Context, key, uploadID string, parts []backends.Part) (_ backends.Info, err error) {
	defer markFull(&err)
	rec, err := b.readRecord(key, uploadID)
	if err != nil {
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}
	if len(parts) == 0 {
		return backends.Info{}, fmt.Errorf("localfs complete: no parts: %w", backends.ErrInvalidPart)
	}
	// Open every part first: the open files keep their bytes whatever happens to the directory.
	files := make([]*os.File, 0, len(parts))
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	sizes := make([]int64, 0, len(parts))
	for i, want := range parts {
		if i > 0 && want.Number <= parts[i-1].Number {
			return backends.Info{}, fmt.Errorf("localfs complete: part %d out of order: %w", want.Number, backends.ErrInvalidPart)
		}
		if want.Number < 1 || want.Number > maxParts {
			return backends.Info{}, fmt.Errorf("localfs complete: part number %d: %w", want.Number, backends.ErrInvalidPart)
		}
		f, got, err := b.openPart(uploadID, want.Number)
		if err != nil {
			if isMissing(err) {
				return backends.Info{}, fmt.Errorf("localfs complete: part %d missing: %w", want.Number, backends.ErrInvalidPart)
			}
			return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
		}
		files = append(files, f)
		if got.ETag != want.ETag {
			return backends.Info{}, fmt.Errorf("localfs complete: part %d has etag %s, not %s: %w", want.Number, got.ETag, want.ETag, backends.ErrInvalidPart)
		}
		if i < len(parts)-1 && got.Size < b.minPartSize {
			return backends.Info{}, fmt.Errorf("localfs complete: part %d has %d bytes, minimum %d: %w", want.Number, got.Size, b.minPartSize, backends.ErrInvalidPart)
		}
		sizes = append(sizes, got.Size)
	}

	tmp, err := b.createTemp("complete")
	if err != nil {
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}
	defer tmp.discard()
	// The data is read anyway, so hashing it is nearly free and gives callers the sha256 that a
	// multipart upload has no other way to learn.
	h := sha256.New()
	w := hashWriter{w: tmp.f, h: h}
	for i, f := range files {
		n, err := streamio.Copy(ctx, w, io.LimitReader(f, sizes[i]))
		if err == nil && n != sizes[i] {
			err = fmt.Errorf("part %d shrank to %d bytes", parts[i].Number, n)
		}
		if err != nil {
			return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if rec.SHA256 != "" && sum != rec.SHA256 {
		return backends.Info{}, fmt.Errorf("localfs complete: concatenation has sha256 %s: %w", sum, backends.ErrChecksum)
	}
	fi, err := tmp.seal()
	if err != nil {
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}

	b.uploadsMu.Lock()
	// A concurrent Complete or Abort of the same upload may have won while we copied.
	if _, err := b.readRecord(key, uploadID); err != nil {
		b.uploadsMu.Unlock()
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}
	if err := b.commit(tmp.name, key); err != nil {
		b.uploadsMu.Unlock()
		return backends.Info{}, fmt.Errorf("localfs complete: %w", err)
	}
	tmp.done = true
	trash, err := b.moveToTrash(uploadID)
	b.uploadsMu.Unlock()
	if err == nil {
		// Best effort: a leftover is found by StagingOrphans.
		_ = b.root.RemoveAll(native(trash))
	}
	info := infoOf(key, fi)
	info.ContentType, info.SHA256 = rec.ContentType, sum
	return info, nil
}

// moveToTrash makes an upload disappear in one rename, leaving the slow recursive delete to run on a
// directory nobody looks up any more. The caller holds uploadsMu.
func (b *Backend) moveToTrash(id string) (string, error) {
	trash := stagingDir + "/trash-" + randomHex(8)
	if err := b.root.Rename(native(uploadDir(id)), native(trash)); err != nil {
		return "", err
	}
	return trash, nil
}

// AbortMultipart discards the upload and its parts. Errors: ErrUploadNotFound, ErrUnavailable after
// Close.
func (b *Backend) AbortMultipart(_ context.Context, key, uploadID string) error {
	b.uploadsMu.Lock()
	if _, err := b.readRecord(key, uploadID); err != nil {
		b.uploadsMu.Unlock()
		return fmt.Errorf("localfs abort: %w", err)
	}
	trash, err := b.moveToTrash(uploadID)
	b.uploadsMu.Unlock()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("localfs abort: %w", errNoUpload)
		}
		return fmt.Errorf("localfs abort: %w", err)
	}
	if err := b.root.RemoveAll(native(trash)); err != nil {
		return fmt.Errorf("localfs abort: upload removed, parts left in %s: %w", trash, err)
	}
	return nil
}
