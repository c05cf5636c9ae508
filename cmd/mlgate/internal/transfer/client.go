// Package transfer is the client side of `mlgate push` and `mlgate pull`: it moves a model version's
// files between a local directory and a running mlgate through the package API
// (…/packages/ml_models/<package>/files/<path>), several files at once, sending and checking sha256 so
// that files already in place are not sent again, and resuming interrupted downloads with Range.
package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is wrapped by a StatusError for a 404: an unknown project, package, version or alias.
var ErrNotFound = errors.New("not found")

// StatusError is an answer of the server other than the one expected: its status and the message of
// its JSON error body ({"error","message"} from the package API, {"error_code","message"} from MLflow's).
type StatusError struct {
	Method, URL string
	Status      int
	Code        string
	Message     string
	RetryAfter  time.Duration // from Retry-After; 0 when absent
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, msg)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// retryable reports whether the same request may succeed later: the server said so (408, 429, 502,
// 503, 504, or a 409 that push retries once: errUploadAgain), or the connection failed. A 500 is a server bug and a 4xx a client mistake: neither is
// retried.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.Is(err, errUploadAgain) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, errShortBody) || errors.Is(err, errRangeRefused)
}

// errUploadAgain marks an upload the server refused with 409 that push sends once more (see push).
var errUploadAgain = errors.New("the server asked to upload again")

// errShortBody is a download that ended before its Content-Length.
var errShortBody = errors.New("the download ended early")

// Config says which mlgate to talk to and how.
type Config struct {
	URL     string // the server's root URL, e.g. http://127.0.0.1:5000
	Project string // a project path (team/vision) or numeric id
	Token   string // sent as Authorization: Bearer; empty for a server without --auth
	// Attempts is how many times a request that failed retryably is tried in all (default 5).
	Attempts int
	// HTTP is the client to use; nil builds one suited to bulk transfers.
	HTTP *http.Client
}

// Client talks to one project of one mlgate.
type Client struct {
	root     string
	project  string
	token    string
	attempts int
	http     *http.Client
}

// NewClient checks cfg and returns a client. The error is a plain message about a missing or malformed
// URL or project.
func NewClient(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("the server URL is required (--url or MLGATE_URL)")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want the server's root URL, such as http://127.0.0.1:5000", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--url %q: a root URL has no query or fragment", cfg.URL)
	}
	if cfg.Project == "" {
		return nil, errors.New("the project is required (--project)")
	}
	c := &Client{root: strings.TrimSuffix(cfg.URL, "/"), project: url.PathEscape(cfg.Project), token: cfg.Token,
		attempts: cfg.Attempts, http: cfg.HTTP}
	if c.attempts <= 0 {
		c.attempts = 5
	}
	if c.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		// Ranges and sha256 are about the stored bytes: a transparently gunzipped body would break both.
		t.DisableCompression = true
		t.WriteBufferSize, t.ReadBufferSize = 256<<10, 256<<10
		// No total timeout: a multi-GB transfer on a slow link must not be cut. Stalls end with the
		// server's body-read timeout (uploads) or the context (downloads).
		c.http = &http.Client{Transport: t, CheckRedirect: dropAuthOffHost}
	}
	return c, nil
}

// packageURL is the URL of a package's file list, or of one file when path is not empty.
func (c *Client) packageURL(pkg Package, path string) string {
	u := c.root + "/api/v4/projects/" + c.project + "/packages/ml_models/" + pkg.escaped() + "/files"
	if path != "" {
		segs := strings.Split(path, "/")
		for i, s := range segs {
			segs[i] = url.PathEscape(s)
		}
		u += "/" + strings.Join(segs, "/")
	}
	return u
}

// newRequest builds a request carrying the token.
func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "mlgate-transfer")
	return req, nil
}

// statusError reads an unexpected answer's error body (at most 64 KiB) into a StatusError and closes it.
func statusError(resp *http.Response) *StatusError {
	defer resp.Body.Close()
	e := &StatusError{Method: resp.Request.Method, URL: resp.Request.URL.Redacted(), Status: resp.StatusCode}
	var body struct {
		Error     string `json:"error"`
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
		e.Code, e.Message = body.Error, body.Message
		if e.Code == "" {
			e.Code = body.ErrorCode
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// withRetries runs attempt until it succeeds, fails for good, or c.attempts have been made, pausing
// between attempts for the server's Retry-After or a doubling backoff (0.5 s up to 8 s). It returns the
// last error.
func (c *Client) withRetries(ctx context.Context, attempt func() error) error {
	pause := 500 * time.Millisecond
	for i := 1; ; i++ {
		err := attempt()
		if err == nil || i >= c.attempts || !retryable(ctx, err) {
			return err
		}
		wait := pause
		var se *StatusError
		if errors.As(err, &se) && se.RetryAfter > 0 {
			wait = min(se.RetryAfter, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		pause = min(2*pause, 8*time.Second)
	}
}

// RemoteFile is a file of a package as the package API lists it.
type RemoteFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ListFiles returns every file of pkg, following the listing's pages. A package that does not exist
// (or that the token cannot see) is a *StatusError wrapping ErrNotFound; other failures are
// *StatusError or the transport's error.
func (c *Client) ListFiles(ctx context.Context, pkg Package) ([]RemoteFile, error) {
	var all []RemoteFile
	token := ""
	for {
		u := c.packageURL(pkg, "") + "?per_page=1000"
		if token != "" {
			u += "&page_token=" + url.QueryEscape(token)
		}
		var page []RemoteFile
		var next string
		err := c.withRetries(ctx, func() error {
			page, next = nil, ""
			req, err := c.newRequest(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := c.http.Do(req)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return statusError(resp)
			}
			defer resp.Body.Close()
			next = resp.Header.Get("X-Next-Page-Token")
			if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
				return fmt.Errorf("listing %s: %w", pkg, err)
			}
			return nil
		})
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

// semverTag is the read-only tag on which mlgate's registry shows a version's semver.
const semverTag = "mlgate.semver"

// ResolveAlias asks the project's MLflow registry which version alias names and returns the package of
// that version. An unknown model or alias wraps ErrNotFound (MLflow answers 400 for an unknown alias);
// other failures are *StatusError or the transport's error.
func (c *Client) ResolveAlias(ctx context.Context, model, alias string) (Package, error) {
	u := c.root + "/api/v4/projects/" + c.project + "/ml/mlflow/api/2.0/mlflow/registered-models/alias?" +
		url.Values{"name": {model}, "alias": {alias}}.Encode()
	var reply struct {
		ModelVersion struct {
			Version string `json:"version"`
			Tags    []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"tags"`
		} `json:"model_version"`
	}
	err := c.withRetries(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		defer resp.Body.Close()
		return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&reply)
	})
	var se *StatusError
	if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Code == "INVALID_PARAMETER_VALUE" || se.Code == "RESOURCE_DOES_NOT_EXIST") {
		return Package{}, fmt.Errorf("alias %q of model %q: %w (%s)", alias, model, ErrNotFound, se.Message)
	}
	if err != nil {
		return Package{}, fmt.Errorf("resolving alias %q of model %q: %w", alias, model, err)
	}
	for _, t := range reply.ModelVersion.Tags {
		if t.Key == semverTag {
			return Package{Model: model, Version: t.Value}, nil
		}
	}
	return Package{}, fmt.Errorf("alias %q of model %q: version %s has no %s tag; is the server mlgate?",
		alias, model, reply.ModelVersion.Version, semverTag)
}

// dropAuthOffHost follows redirects as net/http does, but keeps the token from any other host:port than
// the server's. A download a backend redirects to a presigned URL (redirect_downloads) goes to the
// storage server, often on the same host at another port, where net/http would still send the token:
// it would leak, and S3 refuses a request that carries both a presigned query and an Authorization
// header. Python's requests and curl drop it the same way.
func dropAuthOffHost(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		req.Header.Del("Authorization")
	}
	return nil
}
