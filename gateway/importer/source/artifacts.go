package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// artifactStore reads the files under one artifact root.
type artifactStore interface {
	// walk calls fn for every file at any depth.
	walk(ctx context.Context, fn func(FileInfo) error) error
	// open streams the file at rel from offset on.
	open(ctx context.Context, rel string, offset int64) (opened, error)
}

// opened is one (re)opened stream.
type opened struct {
	body io.ReadCloser
	size int64  // whole file size, -1 when unknown
	etag string // to notice a file replaced between a break and the resume
}

// Artifacts calls fn for every file at any depth under artifactURI (a run's artifact_uri or a logged
// model's artifact_location), paths relative to it. A root that does not exist yields no file (the
// reference server lists a missing path as empty). Errors: ErrUnsupportedScheme naming the scheme;
// ErrNotFound when the source says the root is gone; the source's errors; fn's.
func (c *Client) Artifacts(ctx context.Context, artifactURI string, fn func(FileInfo) error) error {
	st, err := c.artifactStore(artifactURI)
	if err != nil {
		return err
	}
	if err := st.walk(ctx, fn); err != nil {
		return fmt.Errorf("listing artifacts of %s: %w", artifactURI, err)
	}
	return nil
}

// OpenArtifact streams one file under artifactURI; size is -1 when the source does not tell. When the
// stream breaks, the reader reopens it transparently from the offset reached (a Range request; a source
// that ignores Range has the delivered bytes skipped), up to the retry policy's attempts without
// progress. Errors (from OpenArtifact or from Read): ErrNotFound for a missing (or vanished) file,
// ErrUnsupportedScheme, ErrUnavailable once retries are exhausted, an error when the file changes on
// the source while being read; each names the URI and path.
func (c *Client) OpenArtifact(ctx context.Context, artifactURI, rel string) (io.ReadCloser, int64, error) {
	if err := checkRel(rel); err != nil {
		return nil, 0, fmt.Errorf("artifact %q of %s: %w", rel, artifactURI, err)
	}
	st, err := c.artifactStore(artifactURI)
	if err != nil {
		return nil, 0, err
	}
	first, err := st.open(ctx, rel, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact %q of %s: %w", rel, artifactURI, err)
	}
	r := &resumer{ctx: ctx, c: c, st: st, rel: rel, what: fmt.Sprintf("artifact %q of %s", rel, artifactURI),
		body: first.body, size: first.size, etag: first.etag}
	return r, first.size, nil
}

// resumer is a reader that survives broken streams by reopening at the offset reached.
type resumer struct {
	ctx      context.Context
	c        *Client
	st       artifactStore
	rel      string
	what     string
	body     io.ReadCloser
	off      int64
	size     int64
	etag     string
	failures int // consecutive breaks without progress
	err      error
}

func (r *resumer) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				r.err = err
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if r.size >= 0 && r.off > r.size {
			r.err = fmt.Errorf("%s: the source sent more than the %d bytes it announced", r.what, r.size)
			return 0, r.err
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (r.size < 0 || r.off == r.size):
			return n, io.EOF
		case r.ctx.Err() != nil:
			r.err = r.ctx.Err()
			return n, r.err
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.body.Close()
		r.body = nil
		r.failures++
		r.c.log.Info("artifact stream broke, resuming", "artifact", r.what, "offset", r.off, "err", err)
		if r.failures >= r.c.retry.Attempts {
			r.err = fmt.Errorf("%w: %s: the stream broke at byte %d %d times without progress: %v", ErrUnavailable, r.what, r.off, r.failures, err)
			return n, r.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumer) reopen() error {
	if err := r.c.sleep(r.ctx, r.c.backoff(r.failures, nil)); err != nil {
		return err
	}
	o, err := r.st.open(r.ctx, r.rel, r.off)
	if err != nil {
		return fmt.Errorf("%s: resuming at byte %d: %w", r.what, r.off, err)
	}
	if r.size >= 0 && o.size >= 0 && o.size != r.size || r.etag != "" && o.etag != "" && o.etag != r.etag {
		o.body.Close()
		return fmt.Errorf("%s: the file changed on the source while it was read (size %d → %d, etag %q → %q)", r.what, r.size, o.size, r.etag, o.etag)
	}
	r.body = o.body
	return nil
}

func (r *resumer) Close() error {
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

// checkRel refuses paths that could escape an artifact root.
func checkRel(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\\") && filepath.Separator == '\\' {
		return fmt.Errorf("invalid artifact path %q", rel)
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsRune(seg, 0) {
			return fmt.Errorf("invalid artifact path %q", rel)
		}
	}
	return nil
}

var (
	genericPackage = regexp.MustCompile(`/packages/generic/ml_experiment_(\d+)/(\d+)/?$`)
	modelPackage   = regexp.MustCompile(`/packages/ml_models/(candidate:\d+|candidate%3A\d+|\d+)/files/?$`)
)

// artifactStore picks the reader for an artifact URI's scheme.
func (c *Client) artifactStore(uri string) (artifactStore, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("artifact URI %q: %w", uri, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "mlflow-artifacts":
		base := *c.base
		if u.Host != "" {
			// mlflow-artifacts://host:port/… only overrides the host, as in the MLflow client.
			base.Host = u.Host
		}
		root := u.Path
		if u.Opaque != "" {
			root = u.Opaque
		}
		return &proxyStore{c: c, list: joinURL(&base, "/api/2.0/mlflow-artifacts/artifacts"), root: strings.Trim(root, "/")}, nil
	case "http", "https":
		esc := strings.TrimRight(u.EscapedPath(), "/")
		if m := genericPackage.FindStringSubmatch(esc); m != nil {
			return c.packageStore(u, "candidate:"+m[2]), nil
		}
		if m := modelPackage.FindStringSubmatch(esc + "/"); m != nil {
			id, _ := url.PathUnescape(m[1])
			return c.packageStore(u, id), nil
		}
		if before, after, ok := strings.Cut(esc, "/mlflow-artifacts/artifacts"); ok {
			lu := *u
			lu.RawQuery, lu.Fragment, lu.User = "", "", nil
			lu.Path, lu.RawPath = "", ""
			root, err := url.PathUnescape(after)
			if err != nil {
				return nil, fmt.Errorf("artifact URI %q: %w", uri, err)
			}
			return &proxyStore{c: c, list: joinURL(&lu, before+"/mlflow-artifacts/artifacts"), root: strings.Trim(root, "/")}, nil
		}
		return nil, fmt.Errorf("artifact URI %q: %w: an http(s) artifact URI must name an mlflow-artifacts proxy or a GitLab package", uri, ErrUnsupportedScheme)
	case "s3":
		return c.s3Store(u)
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("artifact URI %q: %w: file URIs on another host (%s)", uri, ErrUnsupportedScheme, u.Host)
		}
		return &fileStore{root: filepath.FromSlash(u.Path)}, nil
	case "":
		return &fileStore{root: filepath.FromSlash(uri)}, nil
	}
	if len(u.Scheme) == 1 && filepath.Separator == '\\' {
		return &fileStore{root: uri}, nil // a Windows drive letter
	}
	return nil, fmt.Errorf("artifact URI %q: %w %q", uri, ErrUnsupportedScheme, u.Scheme)
}

// joinURL appends an escaped path to u's.
func joinURL(u *url.URL, escapedPath string) *url.URL {
	v := *u
	v.RawQuery, v.Fragment, v.User = "", "", nil
	p := strings.TrimRight(v.EscapedPath(), "/") + escapedPath
	v.Path, _ = url.PathUnescape(p)
	v.RawPath = p
	return &v
}

func escapeRel(rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// proxyStore reads through the mlflow-artifacts proxy: list at list?path=root/sub, files at list/root/path.
type proxyStore struct {
	c    *Client
	list *url.URL
	root string
}

// maxDepth bounds directory recursion against a source whose listing contains itself.
const maxDepth = 128

func (s *proxyStore) walk(ctx context.Context, fn func(FileInfo) error) error {
	return s.walkDir(ctx, "", 0, fn)
}

func (s *proxyStore) walkDir(ctx context.Context, sub string, depth int, fn func(FileInfo) error) error {
	if depth > maxDepth {
		return fmt.Errorf("directory %q: deeper than %d levels (does the listing contain itself?)", sub, maxDepth)
	}
	listed := path.Join(s.root, sub)
	files, err := s.listDir(ctx, listed)
	if err != nil {
		return err
	}
	for _, f := range files {
		rel, err := relName(s.root, sub, string(f.Path))
		if err != nil {
			return err
		}
		if f.IsDir {
			if err := s.walkDir(ctx, rel, depth+1, fn); err != nil {
				return err
			}
			continue
		}
		size := int64(f.FileSize)
		if err := fn(FileInfo{Path: rel, Size: size}); err != nil {
			return err
		}
	}
	return nil
}

func (s *proxyStore) listDir(ctx context.Context, p string) ([]wireFileInfo, error) {
	u := *s.list
	u.RawQuery = url.Values{"path": {p}}.Encode()
	resp, err := s.c.do(ctx, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", p, err)
	}
	defer resp.Body.Close()
	var out struct {
		Files []wireFileInfo `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(&out); err != nil && err != io.EOF {
		return nil, fmt.Errorf("listing %q: undecodable answer: %v", p, err)
	}
	return out.Files, nil
}

// relName turns a listed name into a path relative to the root. Standard servers list basenames;
// GitLab lists every file flat with its whole (sometimes %-escaped) path; some servers repeat the
// listed directory or the root in front of the name.
func relName(root, sub, name string) (string, error) {
	if strings.Contains(name, "%") {
		if u, err := url.PathUnescape(name); err == nil {
			name = u
		}
	}
	name = strings.TrimPrefix(name, "/")
	switch {
	case root != "" && strings.HasPrefix(name, root+"/"):
		name = strings.TrimPrefix(name, root+"/")
	case sub != "" && strings.HasPrefix(name, sub+"/"):
	default:
		name = path.Join(sub, name)
	}
	if err := checkRel(name); err != nil {
		return "", fmt.Errorf("the source listed %w", err)
	}
	return name, nil
}

func (s *proxyStore) open(ctx context.Context, rel string, offset int64) (opened, error) {
	u := joinURL(s.list, "/"+escapeRel(path.Join(s.root, rel)))
	return s.c.openHTTP(ctx, u, offset)
}

// openHTTP GETs u from offset on, with a Range request when offset > 0. A source that answers 200
// to a Range has the first offset bytes skipped.
func (c *Client) openHTTP(ctx context.Context, u *url.URL, offset int64) (opened, error) {
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, err
		}
		if offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		}
		// A transparently gunzipped body would not match the stored size or resume at byte offsets.
		req.Header.Set("Accept-Encoding", "identity")
		return req, nil
	}, func(r *http.Response) bool {
		return r.StatusCode == http.StatusOK || r.StatusCode == http.StatusPartialContent && offset > 0
	})
	if err != nil {
		return opened{}, err
	}
	o := opened{body: resp.Body, size: -1, etag: resp.Header.Get("ETag")}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			resp.Body.Close()
			return opened{}, fmt.Errorf("GET %s: asked for bytes from %d, got Content-Range %q", u.Path, offset, resp.Header.Get("Content-Range"))
		}
		o.size = total
	default:
		o.size = resp.ContentLength
		if offset > 0 {
			c.log.Debug("source ignored Range; skipping delivered bytes", "path", u.Path, "offset", offset)
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return opened{}, fmt.Errorf("GET %s: the source ignores Range and the stream broke again while skipping %d bytes: %w", u.Path, offset, err)
			}
		}
	}
	return o, nil
}

// parseContentRange reads "bytes start-end/total" (total may be *: -1).
func parseContentRange(v string) (start, total int64, ok bool) {
	v, ok = strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(v, "/")
	if !ok {
		return 0, 0, false
	}
	s, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// packageStore reads a GitLab package: files at <uri>/<path>; the list from the package URL itself
// when the server answers it (mlgate does, as a JSON array) or else from GitLab's flat proxy listing
// of listID (candidate:<iid> or a model version id).
type packageStore struct {
	c      *Client
	base   *url.URL // the package URI without its trailing slash
	listID string
}

func (c *Client) packageStore(u *url.URL, listID string) *packageStore {
	b := *u
	b.RawQuery, b.Fragment, b.User = "", "", nil
	esc := strings.TrimRight(b.EscapedPath(), "/")
	b.Path, _ = url.PathUnescape(esc)
	b.RawPath = esc
	return &packageStore{c: c, base: &b, listID: listID}
}

func (s *packageStore) open(ctx context.Context, rel string, offset int64) (opened, error) {
	return s.c.openHTTP(ctx, joinURL(s.base, "/"+escapeRel(rel)), offset)
}

func (s *packageStore) walk(ctx context.Context, fn func(FileInfo) error) error {
	err := s.walkPackageList(ctx, fn)
	if err == nil || !errors.Is(err, errNoPackageList) {
		return err
	}
	ps := &proxyStore{c: s.c, list: joinURL(s.c.base, "/api/2.0/mlflow-artifacts/artifacts"), root: s.listID}
	return ps.walk(ctx, fn)
}

var errNoPackageList = errors.New("the package URL does not list files")

// walkPackageList reads mlgate's package file list: a JSON array of {path, size}, paged with the
// X-Next-Page-Token header. GitLab has no such list: its 404 (or any answer that is not an array)
// is errNoPackageList.
func (s *packageStore) walkPackageList(ctx context.Context, fn func(FileInfo) error) error {
	p := pager{what: "package file list " + s.base.Path}
	for {
		u := *s.base
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
		q := url.Values{"per_page": {"100"}}
		if p.token != "" {
			q.Set("page_token", p.token)
		}
		u.RawQuery = q.Encode()
		resp, err := s.c.do(ctx, func() (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		}, nil)
		var ae *APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusBadRequest || ae.Status == http.StatusMethodNotAllowed) {
			return errNoPackageList
		}
		if err != nil {
			return err
		}
		var files []struct {
			Path jsonString `json:"path"`
			Size *jsonInt   `json:"size"`
		}
		derr := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(&files)
		resp.Body.Close()
		if derr != nil {
			if p.token == "" {
				return errNoPackageList
			}
			return fmt.Errorf("package file list %s: undecodable page: %v", s.base.Path, derr)
		}
		for _, f := range files {
			rel, err := relName("", "", string(f.Path))
			if err != nil {
				return err
			}
			size := int64(-1)
			if f.Size != nil {
				size = int64(*f.Size)
			}
			if err := fn(FileInfo{Path: rel, Size: size}); err != nil {
				return err
			}
		}
		more, err := p.next(resp.Header.Get("X-Next-Page-Token"))
		if !more {
			return err
		}
	}
}

// fileStore reads a local directory.
type fileStore struct{ root string }

func (s *fileStore) walk(ctx context.Context, fn func(FileInfo) error) error {
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // no artifacts logged
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p) // follows a symlinked file
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		return fn(FileInfo{Path: filepath.ToSlash(rel), Size: info.Size()})
	})
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

func (s *fileStore) open(_ context.Context, rel string, offset int64) (opened, error) {
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return opened{}, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		return opened{}, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", rel)
	}
	if err == nil && offset > 0 {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return opened{}, err
	}
	return opened{body: f, size: info.Size()}, nil
}
