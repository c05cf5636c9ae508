package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/mlgate/mlgate/pkgtypes"
)

// PullOptions says what to pull where.
type PullOptions struct {
	Ref      Ref
	Dir      string   // created when missing; files already there and not in the package are left alone
	Parallel int      // files received at once (default 4)
	Progress Progress // nil: none
}

// Pull downloads every file of opts.Ref into opts.Dir, keeping their paths. A file is received under a
// temporary name beside its destination (.<name>.mlgate-partial), its sha256 checked against the
// package listing's, and only then renamed into place. A partial file that an interrupted pull left is
// continued with a Range request (If-Range on the file's sha256, so a file replaced on the server
// meanwhile is received whole again) instead of restarted. A destination that already holds the same
// bytes is not received again.
//
// Errors: an alias or package that cannot be resolved or listed comes back with a nil report (wrapping
// ErrNotFound when it does not exist), as does a destination that cannot be created. Otherwise the
// report is returned, with an error wrapping ErrIncomplete that names the files that failed when some
// did (their partial files are kept for the next pull unless their bytes were wrong), or with ctx's
// error when ctx ended first.
func (c *Client) Pull(ctx context.Context, opts PullOptions) (*Report, error) {
	pkg := opts.Ref.Package
	if opts.Ref.Alias != "" {
		var err error
		if pkg, err = c.ResolveAlias(ctx, opts.Ref.Model, opts.Ref.Alias); err != nil {
			return nil, err
		}
	}
	files, err := c.ListFiles(ctx, pkg)
	var se *StatusError
	if errors.As(err, &se) && errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("package %s: %w: %s", pkg, ErrNotFound, se.Message)
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", pkg, err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	prog := opts.Progress
	if prog == nil {
		prog = NoProgress{}
	}
	t := newTally("pull", pkg)
	var total int64
	for _, f := range files {
		total += f.Size
	}
	t.planned(len(files), total)
	prog.Start(len(files), total)
	forEach(len(files), opts.Parallel, func(i int) {
		if ctx.Err() != nil {
			return // interrupted: the files not started are not failures of their own
		}
		f := files[i]
		err := c.pullFile(ctx, pkg, opts.Dir, f, prog, t)
		if err != nil {
			t.failed(f.Path, err)
		}
		prog.FileDone(f.Path, err)
	})
	prog.Finish()
	return t.finish(ctx)
}

// pullFile brings one file into dir.
func (c *Client) pullFile(ctx context.Context, pkg Package, dir string, f RemoteFile, prog Progress, t *tally) error {
	// The server's paths become local paths: one that could leave dir (.., absolute) is refused here
	// whatever the server says.
	if err := pkgtypes.ValidateFilePath(f.Path); err != nil {
		return err
	}
	dest := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if same, err := holds(dest, f); err != nil {
		return err
	} else if same {
		prog.Add(f.Size)
		t.skipped()
		return nil
	}
	name := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+partialSuffix)
	out, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	p := &partial{f: out, h: sha256.New(), prog: prog}
	if err := p.load(f.Size); err != nil {
		return err
	}
	resumed := p.have > 0
	if resumed {
		t.resumed()
	}
	for {
		if err := c.withRetries(ctx, func() error { return c.receive(ctx, pkg, f, p, t) }); err != nil {
			return err
		}
		sum := hex.EncodeToString(p.h.Sum(nil))
		if sum == f.SHA256 {
			break
		}
		if resumed {
			// The partial data may have been damaged while the file waited: receive it whole once.
			resumed = false
			if err := p.reset(); err != nil {
				return err
			}
			continue
		}
		_ = os.Remove(name)
		return fmt.Errorf("sha256 mismatch: received %s, the server lists %s (was the file replaced during the pull?)", sum, f.SHA256)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, dest); err != nil {
		return err
	}
	t.transferred()
	return nil
}

// holds reports whether dest is a regular file with f's size and sha256. A missing dest is false.
func holds(dest string, f RemoteFile) (bool, error) {
	info, err := os.Lstat(dest)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !info.Mode().IsRegular() || info.Size() != f.Size {
		return false, nil
	}
	sum, err := fileSHA256(dest)
	if err != nil {
		return false, err
	}
	return sum == f.SHA256, nil
}

// partial is a file being received: the bytes it has and their running sha256.
type partial struct {
	f    *os.File
	h    hash.Hash
	have int64
	prog Progress
}

// load takes up what an earlier pull left in the file: its bytes are hashed and will not be received
// again. A file longer than size is not this file's beginning and is emptied.
func (p *partial) load(size int64) error {
	n, err := p.f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if n > size {
		return p.reset()
	}
	if n > 0 {
		if _, err := io.Copy(p.h, io.NewSectionReader(p.f, 0, n)); err != nil {
			return fmt.Errorf("reading the partial download %s: %w", p.f.Name(), err)
		}
		p.have = n
		p.prog.Add(n)
	}
	return nil
}

// reset empties the file, to receive it from its first byte.
func (p *partial) reset() error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.h.Reset()
	p.prog.Add(-p.have)
	p.have = 0
	return nil
}

// errRangeRefused is a Range the server could not satisfy for what the partial file holds: the file is
// received again from the start, which the retry does.
var errRangeRefused = errors.New("the server refused to continue the partial download")

// receive makes one request for what p lacks of f and appends it. A server that answers the whole file
// (no Range support, or If-Range saw another file) restarts p.
func (c *Client) receive(ctx context.Context, pkg Package, f RemoteFile, p *partial, t *tally) error {
	if p.have == f.Size && f.Size > 0 {
		return nil
	}
	req, err := c.newRequest(ctx, http.MethodGet, c.packageURL(pkg, f.Path), nil)
	if err != nil {
		return err
	}
	if p.have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(p.have, 10)+"-")
		req.Header.Set("If-Range", `"`+f.SHA256+`"`)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if p.have > 0 {
			if err := p.reset(); err != nil {
				return err
			}
		}
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != p.have {
			if err := p.reset(); err != nil {
				return err
			}
			return fmt.Errorf("%w: Content-Range %q", errRangeRefused, resp.Header.Get("Content-Range"))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := p.reset(); err != nil {
			return err
		}
		return errRangeRefused
	default:
		return statusError(resp)
	}
	body := &countingReader{r: resp.Body, add: func(n int64) { p.prog.Add(n); t.moved(n) }}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	n, err := io.CopyBuffer(io.MultiWriter(p.f, p.h), body, *buf)
	p.have += n
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: %w", errShortBody, err)
		}
		return err
	}
	if p.have != f.Size {
		return fmt.Errorf("received %d bytes, the listing says %d (was the file replaced during the pull?)", p.have, f.Size)
	}
	return nil
}

// copyBuffers are reused between downloads: a buffer allocated per file makes the garbage collector
// the cost of pulling many small files.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// rangeStart reads the first byte position of a Content-Range: bytes <start>-<end>/<size>.
func rangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}
