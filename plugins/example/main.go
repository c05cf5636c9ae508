// Command example is a complete third-party storage plugin for mlgate, to copy from.
//
// A plugin is a Go program whose main calls plugins.Serve with a backends.Factory. The factory receives
// the "config" JSON of the plugin's entry in mlgate's config and returns any backends.Backend; mlgate
// calls it once, when it starts (or restarts) the plugin. Everything else (handshake, gRPC, streaming,
// error mapping, health checks) is the SDK's job.
//
// This example stores blobs in a directory, by wrapping the localfs backend and refusing writes when
// "read_only" is set. Build it and pin its hash in mlgate's config:
//
//	go build -o mlgate-backend-example ./plugins/example
//	sha256sum mlgate-backend-example
//
//	backends:
//	  - name: archive
//	    plugin: {path: ./mlgate-backend-example, sha256: <the sum>}
//	    config: {root: /srv/archive, read_only: false}
//
// Errors must wrap the sentinels of package backends (backends.ErrNotFound, ...) with %w: they cross
// the process boundary by name, and mlgate turns them into the right HTTP status.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/plugins"
)

type config struct {
	Root     string `json:"root"`
	ReadOnly bool   `json:"read_only"`
}

// readOnly refuses every write of the backend it wraps; reads pass through.
type readOnly struct{ backends.Backend }

var errReadOnly = fmt.Errorf("example: read-only: %w", backends.ErrUnsupported)

func (readOnly) Put(context.Context, string, io.Reader, int64, backends.PutOptions) (backends.Info, error) {
	return backends.Info{}, errReadOnly
}
func (readOnly) Delete(context.Context, string) error { return errReadOnly }
func (readOnly) CreateMultipart(context.Context, string, backends.PutOptions) (string, error) {
	return "", errReadOnly
}

func main() {
	plugins.Serve(func(ctx context.Context, raw json.RawMessage) (backends.Backend, error) {
		var cfg config
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("example config: %w", err)
		}
		b, err := localfs.New(cfg.Root)
		if err != nil {
			return nil, err
		}
		if cfg.ReadOnly {
			return readOnly{b}, nil
		}
		return b, nil
	})
}
