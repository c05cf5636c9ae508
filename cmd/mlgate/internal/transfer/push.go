package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/mlgate/mlgate/pkgtypes"
)

// ErrNothingToPush is returned when the sources hold no file.
var ErrNothingToPush = errors.New("nothing to push")

// PushOptions says what to push where.
type PushOptions struct {
	Package Package
	// Sources are directories, pushed recursively with paths relative to the directory, and files,
	// pushed under their base name.
	Sources  []string
	Parallel int      // files sent at once (default 4)
	Progress Progress // nil: none
}

// localFile is a file to push: where it is and the path it gets in the package.
type localFile struct {
	path  string // in the package, '/'-separated
	local string
	size  int64
}

// Push uploads the sources' files into opts.Package, creating the model and version as the package API
// does. Each file's sha256 is computed first and sent as X-Checksum-SHA256, which the server verifies;
// a file the package already has with that sha256 is not sent. So a push that was interrupted, or that
// is run twice, sends only what is missing.
//
// Errors: the sources' problems (missing, unreadable, a name the package API refuses, two sources giving
// one path, ErrNothingToPush) and a failed listing of the package come back with a nil report, before
// anything is sent. Otherwise the report is returned, with an error wrapping ErrIncomplete that names
// the files that failed when some did, or with ctx's error when ctx ended first.
func (c *Client) Push(ctx context.Context, opts PushOptions) (*Report, error) {
	files, err := collectFiles(opts.Sources)
	if err != nil {
		return nil, err
	}
	remote, err := c.ListFiles(ctx, opts.Package)
	if err != nil && !errors.Is(err, ErrNotFound) {
		// A 404 is a version (or project) that the first upload creates; anything else would fail the
		// uploads too.
		return nil, fmt.Errorf("listing %s: %w", opts.Package, err)
	}
	present := make(map[string]string, len(remote))
	for _, f := range remote {
		present[f.Path] = f.SHA256
	}
	prog := opts.Progress
	if prog == nil {
		prog = NoProgress{}
	}
	t := newTally("push", opts.Package)
	var total int64
	for _, f := range files {
		total += f.size
	}
	t.planned(len(files), total)
	prog.Start(len(files), total)
	forEach(len(files), opts.Parallel, func(i int) {
		if ctx.Err() != nil {
			return // interrupted: the files not started are not failures of their own
		}
		f := files[i]
		err := c.pushFile(ctx, opts.Package, f, present[f.path], prog, t)
		if err != nil {
			t.failed(f.path, err)
		}
		prog.FileDone(f.path, err)
	})
	prog.Finish()
	return t.finish(ctx)
}

// forEach calls fn(0..n-1) on at most parallel goroutines (4 when parallel < 1) and waits for all.
func forEach(n, parallel int, fn func(i int)) {
	if parallel < 1 {
		parallel = 4
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// pushFile hashes f and sends it unless the package has it already (remoteSum).
func (c *Client) pushFile(ctx context.Context, pkg Package, f localFile, remoteSum string, prog Progress, t *tally) error {
	sum, err := fileSHA256(f.local)
	if err != nil {
		return err
	}
	if sum == remoteSum {
		prog.Add(f.size)
		t.skipped()
		return nil
	}
	u := c.packageURL(pkg, f.path)
	conflictRetried := false
	err = c.withRetries(ctx, func() error {
		in, err := os.Open(f.local)
		if err != nil {
			return err
		}
		defer in.Close()
		if info, err := in.Stat(); err != nil {
			return err
		} else if info.Size() != f.size {
			return fmt.Errorf("%s changed while pushing (%d bytes, was %d)", f.local, info.Size(), f.size)
		}
		body := &countingReader{r: in, add: prog.Add}
		req, err := c.newRequest(ctx, http.MethodPut, u, body)
		if err != nil {
			return err
		}
		req.ContentLength = f.size
		req.Header.Set("X-Checksum-SHA256", sum)
		resp, err := c.http.Do(req)
		t.moved(body.n)
		if err != nil {
			prog.Add(-body.n)
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			prog.Add(-body.n)
			se := statusError(resp)
			if se.Status == http.StatusConflict && !conflictRetried {
				// Concurrent first uploads of a new version through different replicas: the store lets one
				// create the version and tells the others to upload again. Once is enough, since the
				// version exists by then; a conflict that is not this one fails again and is reported.
				conflictRetried = true
				return fmt.Errorf("%w: %w", errUploadAgain, se)
			}
			return se
		}
		defer resp.Body.Close()
		var stored RemoteFile
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&stored); err != nil {
			return fmt.Errorf("reading the answer to the upload: %w", err)
		}
		if stored.SHA256 != sum {
			return fmt.Errorf("the server stored sha256 %s, not %s", stored.SHA256, sum)
		}
		// A body the server did not need (it had the file) was never read: count what it did not take.
		prog.Add(f.size - body.n)
		return nil
	})
	if err != nil {
		return err
	}
	t.transferred()
	return nil
}

// fileSHA256 is the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	h := sha256.New()
	if _, err := io.Copy(h, in); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// countingReader reports every byte read through it.
type countingReader struct {
	r   io.Reader
	n   int64
	add func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.add(int64(n))
	}
	return n, err
}

// partialSuffix ends the temporary name a pull downloads a file under (.<name>.mlgate-partial).
const partialSuffix = ".mlgate-partial"

func isPartialName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, partialSuffix)
}

// collectFiles lists the files of sources, sorted by package path. A directory contributes every regular
// file beneath it (following symbolic links to files, refusing those to directories, which could loop),
// except a pull's partial downloads; a file contributes itself under its base name. Errors name the
// source: missing or unreadable, not a regular file, a path the package API would refuse
// (pkgtypes.ErrInvalidPath), two sources for one path, or ErrNothingToPush.
func collectFiles(sources []string) ([]localFile, error) {
	var files []localFile
	from := map[string]string{} // package path → local path
	add := func(path, local string, size int64) error {
		if err := pkgtypes.ValidateFilePath(path); err != nil {
			return fmt.Errorf("%s: %w", local, err)
		}
		if other, dup := from[path]; dup {
			return fmt.Errorf("%s and %s would both be pushed as %q", other, local, path)
		}
		from[path] = local
		files = append(files, localFile{path: path, local: local, size: size})
		return nil
	}
	for _, src := range sources {
		info, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if !info.Mode().IsRegular() {
				return nil, fmt.Errorf("%s is not a regular file", src)
			}
			if err := add(filepath.Base(src), src, info.Size()); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if isPartialName(d.Name()) {
				return nil
			}
			info, err := os.Stat(p)
			if err != nil {
				return err
			}
			if info.IsDir() {
				return fmt.Errorf("%s is a symbolic link to a directory, which push does not follow: push the directory itself", p)
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			return add(filepath.ToSlash(rel), p, info.Size())
		})
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no file in %s", ErrNothingToPush, strings.Join(sources, ", "))
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, nil
}
