package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// adminClient calls a running server's admin routes (/api/v4/admin/…) with an instance token, for the
// commands that have a --url form (token, backup).
type adminClient struct {
	base  string // the server's root URL, without a trailing slash
	token string // "" without --auth
	http  *http.Client
}

// addServerFlags adds --url and --token; the token defaults to MLGATE_TOKEN. --url has no environment
// default, so that the offline --data-dir forms stay what they were.
func addServerFlags(fs *flag.FlagSet, serverURL, token *string) {
	fs.StringVar(serverURL, "url", "", "root URL of a running server (e.g. http://127.0.0.1:5000): act through its admin API instead of --data-dir")
	fs.StringVar(token, "token", envOr("MLGATE_TOKEN", ""), "instance token for --url when the server runs with --auth (MLGATE_TOKEN)")
}

func newAdminClient(rawURL, token string) (*adminClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want the server's root URL, such as http://127.0.0.1:5000", rawURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--url %q: want the server's root URL, without a query", rawURL)
	}
	// No overall timeout: a backup of a large store streams for as long as it takes.
	return &adminClient{base: strings.TrimRight(u.String(), "/"), token: token, http: &http.Client{}}, nil
}

// do sends a request to path (under base) and returns the response when its status is want; otherwise
// it reads the error body and returns it as an error naming the status and the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, body any, want int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error, Message string }
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	hint := ""
	switch {
	case resp.StatusCode == http.StatusUnauthorized && c.token == "":
		hint = " (the server runs with --auth: pass an instance token with --token or MLGATE_TOKEN)"
	case resp.StatusCode == http.StatusNotFound && e.Error == "":
		hint = " (is --url the root URL of an mlgate server?)"
	}
	return nil, fmt.Errorf("%s %s: %s: %s%s", method, c.base+path, resp.Status, msg, hint)
}

// json is do with the JSON answer decoded into out (nil: ignored).
func (c *adminClient) json(ctx context.Context, method, path string, body any, want int, out any) error {
	resp, err := c.do(ctx, method, path, body, want)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: undecodable answer: %w", method, path, err)
	}
	return nil
}

var errURLAndDataDir = errors.New("give --url (a running server) or --data-dir (a stopped one), not both")
