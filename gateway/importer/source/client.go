package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kind is the flavour of the source's API.
type Kind int

const (
	KindMLflow Kind = iota // an MLflow tracking server (or anything speaking its protocol unprefixed)
	KindGitLab             // a GitLab project's /api/v4/projects/<id>/ml/mlflow API
)

func (k Kind) String() string {
	if k == KindGitLab {
		return "gitlab"
	}
	return "mlflow"
}

// Sentinel errors; every error the client returns that falls in one of these classes wraps it.
var (
	// ErrNotFound: the source says the entity or artifact does not exist.
	ErrNotFound = errors.New("not found on the source")
	// ErrUnsupportedScheme: an artifact URI whose scheme the client cannot read.
	ErrUnsupportedScheme = errors.New("unsupported artifact URI scheme")
	// ErrIncomplete: the source returned less than exists (a capped metric history, an unlistable registry).
	ErrIncomplete = errors.New("the source returned incomplete data")
	// ErrUnavailable: retries are exhausted (timeouts, connection errors, 5xx, 429).
	ErrUnavailable = errors.New("source unavailable")
)

// APIError is a non-success answer of the source, with MLflow's error body when it sent one.
type APIError struct {
	Method, Path string // the request, path without query
	Status       int
	Code         string // MLflow error_code, "" when the body was not MLflow's
	Message      string // MLflow message, or the start of the body
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes a 404 that is not ENDPOINT_NOT_FOUND an ErrNotFound, and a retryable status ErrUnavailable.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound && e.Code != "ENDPOINT_NOT_FOUND"
	case ErrUnavailable:
		return retryableStatus(e.Status)
	}
	return false
}

// endpointMissing tells whether err says the RPC itself does not exist on the source (an older server).
func endpointMissing(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch {
	case ae.Code == "ENDPOINT_NOT_FOUND", ae.Code == "NOT_IMPLEMENTED":
		return true
	case ae.Status == http.StatusNotFound && ae.Code == "", ae.Status == http.StatusMethodNotAllowed, ae.Status == http.StatusNotImplemented:
		return true
	}
	return false
}

// Config says how to reach the source.
type Config struct {
	// URL is the tracking URI: http://host:5000 for MLflow, or
	// https://gitlab.example/api/v4/projects/<id or escaped path>/ml/mlflow for a GitLab-style source
	// (recognized by that path shape).
	URL string
	// Token goes as PRIVATE-TOKEN to a GitLab-style source, otherwise as Authorization: Bearer.
	Token string
	// Username and Password: HTTP basic auth; when set they win over Token (as in the MLflow client).
	Username, Password string
	// S3Endpoint is the endpoint of an S3-compatible server for s3:// URIs (path-style addressing).
	// Credentials and region come from the standard AWS environment.
	S3Endpoint string
	// HTTPClient nil: a client with connect, TLS and response-header timeouts but no overall timeout,
	// so that a long download is never cut.
	HTTPClient *http.Client
	Retry      Retry
	Log        *slog.Logger
}

// Retry is the backoff policy for every request. Zero fields take defaults: 8 attempts, 200ms base,
// 10s cap. The delay before attempt n+1 is a random duration in [d/2, d] with d = min(Max, Base·2ⁿ),
// or the source's Retry-After when that is longer.
type Retry struct {
	Attempts  int
	Base, Max time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 8
	}
	if r.Base <= 0 {
		r.Base = 200 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Second
	}
	if r.Max < r.Base {
		r.Max = r.Base
	}
	return r
}

// maxRetryAfter bounds a Retry-After so that a hostile or confused source cannot park the import for hours.
const maxRetryAfter = 5 * time.Minute

// Client reads one source. It is safe for concurrent use.
type Client struct {
	cfg      Config
	kind     Kind
	base     *url.URL // tracking URI without credentials, query or trailing slash
	identity string
	hc       *http.Client
	retry    Retry
	log      *slog.Logger
	// sleep waits between attempts; tests replace it to observe delays without waiting.
	sleep func(ctx context.Context, d time.Duration) error
	s3    *s3Reader // lazily built on the first s3:// URI
}

var gitlabPath = regexp.MustCompile(`^(.*)/api/v4/projects/([^/]+)/ml/mlflow$`)

// Open validates cfg, detects the kind of source and probes it with one small experiments search, so
// that a wrong URL or credentials fail here. Errors: a malformed URL; the probe's error (an *APIError
// for 401/403/404 with advice in the message, ErrUnavailable when the source cannot be reached).
func Open(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.probe(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil {
		return nil, fmt.Errorf("source URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("source URL %q: the scheme must be http or https", redact(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("source URL %q: no host", redact(u))
	}
	if u.User != nil && cfg.Username == "" {
		// user:password@host in --from works like --username/--password, as it does for the MLflow client.
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	base := &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host), Path: strings.TrimRight(u.Path, "/"), RawPath: strings.TrimRight(u.RawPath, "/")}
	c := &Client{cfg: cfg, base: base, retry: cfg.Retry.withDefaults(), log: cfg.Log, sleep: sleepCtx}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if gitlabPath.MatchString(base.EscapedPath()) {
		c.kind = KindGitLab
	}
	c.identity = base.String()
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 30 * time.Second
	// A server that accepts the request but never answers is caught here; a body that streams for an
	// hour is not, because there is no Client.Timeout.
	tr.ResponseHeaderTimeout = 2 * time.Minute
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: tr}
}

func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return v.String()
}

// Kind is the detected kind of source.
func (c *Client) Kind() Kind { return c.kind }

// Identity is the normalized source URL (scheme, lower-case host, path; no credentials, query or
// trailing slash), stable across runs: the import journal's key.
func (c *Client) Identity() string { return c.identity }

func (c *Client) probe(ctx context.Context) error {
	var out struct {
		Experiments []wireExperiment `json:"experiments"`
	}
	err := c.call(ctx, http.MethodPost, "experiments/search", nil, map[string]any{"max_results": 1}, &out)
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden:
			return fmt.Errorf("source %s refused the credentials (check --token or --username/--password): %w", c.identity, err)
		case ae.Status == http.StatusNotFound && c.kind == KindGitLab:
			return fmt.Errorf("source %s: no such project, or the token may not read its experiments (GitLab answers 404 for both): %w", c.identity, err)
		case ae.Status == http.StatusNotFound:
			return fmt.Errorf("source %s does not serve the MLflow API (expected the tracking URI, e.g. http://host:5000): %w", c.identity, err)
		}
	}
	return fmt.Errorf("source %s: %w", c.identity, err)
}

// MajorVersion returns 3 when the source answers MLflow 3's logged-models/search, else 2. Errors: the
// source's, other than "endpoint missing".
func (c *Client) MajorVersion(ctx context.Context) (int, error) {
	var out json.RawMessage
	err := c.call(ctx, http.MethodPost, "logged-models/search", nil, map[string]any{"experiment_ids": []string{"0"}, "max_results": 1}, &out)
	switch {
	case err == nil:
		return 3, nil
	case endpointMissing(err):
		return 2, nil
	case errors.Is(err, ErrNotFound):
		// A 3.x server answers 404 RESOURCE_DOES_NOT_EXIST for an experiment 0 that was deleted for good.
		return 3, nil
	}
	return 0, err
}

// rpcURL is the URL of an MLflow REST RPC.
func (c *Client) rpcURL(rpc string, q url.Values) *url.URL {
	u := *c.base
	u.Path += "/api/2.0/mlflow/" + rpc
	if u.RawPath != "" {
		u.RawPath += "/api/2.0/mlflow/" + rpc
	}
	u.RawQuery = q.Encode()
	return &u
}

// authorize adds the configured credentials to a request to the source's host. Requests elsewhere
// (an artifact URI naming another host) go without them, so that credentials never leak.
func (c *Client) authorize(req *http.Request) {
	if !strings.EqualFold(req.URL.Host, c.base.Host) || req.URL.Scheme != c.base.Scheme {
		return
	}
	switch {
	case c.cfg.Username != "" || c.cfg.Password != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	case c.cfg.Token != "" && c.kind == KindGitLab:
		req.Header.Set("PRIVATE-TOKEN", c.cfg.Token)
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
}

// call performs one JSON RPC with retries and decodes a 200 answer into out. Errors: *APIError for a
// non-retryable answer (wrapping ErrNotFound on 404), ErrUnavailable once retries are exhausted, the
// context's error, or a decoding error naming the RPC.
func (c *Client) call(ctx context.Context, method, rpc string, q url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	u := c.rpcURL(rpc, q)
	resp, err := c.do(ctx, func() (*http.Request, error) {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return nil, err
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	if err != nil {
		return fmt.Errorf("%w: %s %s: reading the answer: %v", ErrUnavailable, method, u.Path, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// An empty 200 is the same as {} for a void RPC or an empty list.
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: undecodable answer (%v): %.200s", method, u.Path, err, data)
	}
	return nil
}

// maxJSONBody bounds one JSON answer; a 25 000-point metric page is a few MB.
const maxJSONBody = 256 << 20

// accept decides whether a response ends the retry loop successfully.
type accept func(*http.Response) bool

// do sends the request newReq builds, retrying connection errors, timeouts, 408, 429 and 5xx with
// backoff. ok decides which statuses are success (nil: 200 only). It returns the successful response
// (the caller closes its body), an *APIError for any other final status, or ErrUnavailable.
func (c *Client) do(ctx context.Context, newReq func() (*http.Request, error), ok accept) (*http.Response, error) {
	if ok == nil {
		ok = func(r *http.Response) bool { return r.StatusCode == http.StatusOK }
	}
	var last error
	for attempt := 0; attempt < c.retry.Attempts; attempt++ {
		if attempt > 0 {
			if err := c.sleep(ctx, c.backoff(attempt, last)); err != nil {
				return nil, err
			}
		}
		req, err := newReq()
		if err != nil {
			return nil, err
		}
		c.authorize(req)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
			c.log.Debug("source request failed, retrying", "method", req.Method, "path", req.URL.Path, "attempt", attempt+1, "err", err)
			continue
		}
		if ok(resp) {
			return resp, nil
		}
		ae := readAPIError(req, resp)
		if !retryableStatus(resp.StatusCode) {
			return nil, ae
		}
		last = &retryAfterError{APIError: ae, after: retryAfter(resp.Header.Get("Retry-After"))}
		c.log.Debug("source answered a retryable status", "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode, "attempt", attempt+1)
	}
	return nil, fmt.Errorf("%w after %d attempts: %w", ErrUnavailable, c.retry.Attempts, last)
}

// retryAfterError carries a retryable answer and its Retry-After.
type retryAfterError struct {
	*APIError
	after time.Duration
}

func (e *retryAfterError) Unwrap() error { return e.APIError }

func (c *Client) backoff(attempt int, last error) time.Duration {
	d := c.retry.Base << min(attempt-1, 30)
	if d > c.retry.Max || d <= 0 {
		d = c.retry.Max
	}
	d = d/2 + rand.N(d/2+1)
	var ra *retryAfterError
	if errors.As(last, &ra) && ra.after > d {
		d = min(ra.after, maxRetryAfter)
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func retryableStatus(s int) bool {
	return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500 && s != http.StatusNotImplemented
}

// retryAfter parses Retry-After as seconds or an HTTP date; 0 when absent or unparseable.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// readAPIError consumes and closes a failed response and describes it, with MLflow's error body when
// there is one (GitLab's {"message": …} or {"error": …} bodies are used too).
func readAPIError(req *http.Request, resp *http.Response) *APIError {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ae := &APIError{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode}
	var body struct {
		ErrorCode string          `json:"error_code"`
		Message   json.RawMessage `json:"message"`
		Error     string          `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil {
		ae.Code = body.ErrorCode
		var s string
		if json.Unmarshal(body.Message, &s) == nil {
			ae.Message = s
		} else if len(body.Message) > 0 {
			ae.Message = string(body.Message)
		}
		if ae.Message == "" {
			ae.Message = body.Error
		}
	} else {
		ae.Message = strings.TrimSpace(string(data))
	}
	if len(ae.Message) > 300 {
		ae.Message = ae.Message[:300] + "…"
	}
	return ae
}
