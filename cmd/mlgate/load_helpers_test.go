// Helpers for tests that put a real mlgate under load from many goroutines (the reliability suite and
// the replicas tests): a client for many workers, generated upload bodies, and package and MLflow calls
// that return errors instead of failing the test.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// relRequestTimeout bounds one request of a reliability test, so that a hung request becomes a
// counted error instead of a test that hangs until go test's own timeout. It is generous because
// the machine is loaded on purpose: a 50 MB transfer among 200 busy clients on 2 cores takes a while.
const relRequestTimeout = 3 * time.Minute

// newPoolClient returns a client whose transport keeps up to conns idle connections to one host.
// net/http's default keeps two, so 200 workers would open a connection per request and leave
// thousands of sockets in TIME_WAIT, measuring connection churn instead of mlgate.
func newPoolClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * conns
	tr.MaxIdleConnsPerHost = 2 * conns
	tr.DisableCompression = true
	return &http.Client{Transport: tr}
}

// pkgURL is the package API address of one file (or, with path "", of a version's listing).
func pkgURL(base, project, model, version, path string) string {
	u := base + "/api/v4/projects/" + url.PathEscape(project) + "/packages/ml_models/" +
		url.PathEscape(model) + "/" + version + "/files"
	if path != "" {
		u += "/" + path
	}
	return u
}

// genBody is size bytes of random content that is generated as it is read, never held: the ChaCha8
// stream keyed by seed. It hashes what it hands out, so a worker knows the sha256 of what it sent
// without a second pass, and genSum can compute the same sum later from the seed alone.
type genBody struct {
	rng  *rand.ChaCha8
	left int64
	h    hash.Hash
}

func newGenBody(seed uint64, size int64) *genBody {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &genBody{rng: rand.NewChaCha8(key), left: size, h: sha256.New()}
}

func (g *genBody) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	_, _ = g.rng.Read(p) // never fails
	g.h.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

// sum is the sha256 (hex) of everything read so far; the file's sum once done reports true.
func (g *genBody) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// done reports whether every byte has been read.
func (g *genBody) done() bool { return g.left <= 0 }

// genSum is the sha256 (hex) of the genBody of seed and size, generated again.
func genSum(seed uint64, size int64) string {
	g := newGenBody(seed, size)
	_, _ = io.CopyBuffer(io.Discard, g, make([]byte, 256<<10))
	return g.sum()
}

// copyBufs recycles the buffers that hash downloads, so that 200 workers do not allocate 256 KiB
// per request.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// readHashed reads r to its end and returns the number of bytes read, their sha256 (hex), and the
// error that ended the read (nil at a clean end: net/http reports a body shorter than its
// Content-Length as io.ErrUnexpectedEOF).
func readHashed(r io.Reader) (int64, string, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, *buf)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// errThrottled is the error of a request answered 429: the caller backs off for retryAfter and
// tries again. It is the one failure a reliability test expects, from the upload limiter.
type errThrottled struct{ retryAfter time.Duration }

func (e *errThrottled) Error() string { return fmt.Sprintf("429, retry after %v", e.retryAfter) }

// throttled returns the errThrottled for resp when it is a 429, else nil. A missing or unparsable
// Retry-After is reported as -1: the limiter must send one, and the caller counts its absence.
func throttled(resp *http.Response) error {
	if resp.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	ra := time.Duration(-1)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		ra = time.Duration(s) * time.Second
	}
	return &errThrottled{retryAfter: ra}
}

// statusError describes an unexpected answer, with the start of its body.
func statusError(what string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s: %s: %s", what, resp.Status, bytes.TrimSpace(b))
}

// rpc sends one MLflow RPC (POST with a JSON body, or GET with in as the query) and decodes a 200
// answer into out. A 429 is an *errThrottled; any other non-200 answer is an error naming the status
// and MLflow's error body.
func rpc(ctx context.Context, c *http.Client, base, method, name string, in map[string]any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, relRequestTimeout)
	defer cancel()
	u := base + "/api/2.0/mlflow/" + name
	var body io.Reader
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range in {
			q.Set(k, fmt.Sprint(v))
		}
		u += "?" + q.Encode()
	} else {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	if err := throttled(resp); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(name, resp)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", name, err)
	}
	return nil
}

// mustRPC is rpc for the test's own goroutine: any error fails the test.
func mustRPC(t *testing.T, c *http.Client, base, method, name string, in map[string]any, out any) {
	t.Helper()
	if err := rpc(context.Background(), c, base, method, name, in, out); err != nil {
		t.Fatal(err)
	}
}

// metricPoint is one point of a metric as MLflow sends and returns it.
type metricPoint struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

// metricHistory returns every point of one metric of a run, following page tokens.
func metricHistory(ctx context.Context, c *http.Client, base, runID, key string) ([]metricPoint, error) {
	var all []metricPoint
	token := ""
	for {
		var page struct {
			Metrics       []metricPoint `json:"metrics"`
			NextPageToken string        `json:"next_page_token"`
		}
		in := map[string]any{"run_id": runID, "metric_key": key}
		if token != "" {
			in["page_token"] = token
		}
		if err := rpc(ctx, c, base, http.MethodGet, "metrics/get-history", in, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Metrics...)
		if page.NextPageToken == "" {
			return all, nil
		}
		token = page.NextPageToken
	}
}

// createRun creates an experiment's run and returns its id.
func createRun(t *testing.T, c *http.Client, base, expID, name string) string {
	t.Helper()
	var r struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mustRPC(t, c, base, http.MethodPost, "runs/create", map[string]any{"experiment_id": expID, "run_name": name,
		"start_time": time.Now().UnixMilli()}, &r)
	if r.Run.Info.RunID == "" {
		t.Fatalf("runs/create %s: no run id", name)
	}
	return r.Run.Info.RunID
}

// uploadResult is what the package API answers to an upload.
type uploadResult struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// uploadGen uploads the genBody of seed and size to u (a package file URL) and checks the answer: a
// 201 whose size and sha256 are those of the bytes sent. It returns the sha256. A 429 is an
// *errThrottled and nothing else is stored.
func uploadGen(ctx context.Context, c *http.Client, u string, seed uint64, size int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, relRequestTimeout)
	defer cancel()
	body := newGenBody(seed, size)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("PUT %s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := throttled(resp); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", statusError("PUT "+u, resp)
	}
	var got uploadResult
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return "", fmt.Errorf("PUT %s: decoding the answer: %w", u, err)
	}
	// A 201 for a body the server did not read whole would be a lie; net/http sends the body before it
	// can have the answer, so done() is true here unless the server answered early.
	if !body.done() {
		return "", fmt.Errorf("PUT %s: 201 before the whole body was sent (%d bytes left)", u, body.left)
	}
	if want := body.sum(); got.SHA256 != want || got.Size != size {
		return "", fmt.Errorf("PUT %s: 201 with size %d sha256 %s, sent %d bytes with sha256 %s", u, got.Size, got.SHA256, size, want)
	}
	return got.SHA256, nil
}

// downloadCheck downloads u and checks that it is a 200 with Content-Length size whose body has that
// many bytes and the sha256 want. A 429 is an *errThrottled.
func downloadCheck(ctx context.Context, c *http.Client, u string, size int64, want string) error {
	ctx, cancel := context.WithTimeout(ctx, relRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := throttled(resp); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError("GET "+u, resp)
	}
	if resp.ContentLength != size {
		return fmt.Errorf("GET %s: Content-Length %d, want %d", u, resp.ContentLength, size)
	}
	n, sum, err := readHashed(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body cut after %d of %d bytes: %w", u, n, size, err)
	}
	if n != size || sum != want {
		return fmt.Errorf("GET %s: %d bytes with sha256 %s, want %d bytes with sha256 %s", u, n, sum, size, want)
	}
	return nil
}

// listedFile is one entry of a package listing.
type listedFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// listFiles returns every file of a version's listing at u (pkgURL with path ""), following
// X-Next-Page-Token with pages of perPage. A 429 is an *errThrottled.
func listFiles(ctx context.Context, c *http.Client, u string, perPage int) ([]listedFile, error) {
	var all []listedFile
	token := ""
	for {
		page, next, err := listPage(ctx, c, u, perPage, token)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

func listPage(ctx context.Context, c *http.Client, u string, perPage int, token string) ([]listedFile, string, error) {
	ctx, cancel := context.WithTimeout(ctx, relRequestTimeout)
	defer cancel()
	q := url.Values{"per_page": {strconv.Itoa(perPage)}}
	if token != "" {
		q.Set("page_token", token)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := throttled(resp); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", statusError("GET "+u, resp)
	}
	var page []listedFile
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, "", fmt.Errorf("GET %s: decoding the listing: %w", u, err)
	}
	return page, resp.Header.Get("X-Next-Page-Token"), nil
}
