package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/backends/minio"
	"github.com/mlgate/mlgate/backends/s3"
	"github.com/mlgate/mlgate/plugins"
)

// inProcess maps the `type:` of a configured backend to its factory: the whole list of built-in
// backends, written out here rather than registered from init functions.
var inProcess = backends.Registry{
	"memory":  memory.Factory,
	"localfs": localfs.Factory,
	"s3":      s3.Factory,    // aws-sdk-go-v2, against AWS or any S3-compatible server
	"minio":   minio.Factory, // minio-go, same servers
}

// launchPlugin starts a `plugin:` backend: launched, checksum-verified and supervised by package plugins.
func launchPlugin(ctx context.Context, name string, p pluginSpec, config json.RawMessage, log *slog.Logger) (backends.Backend, error) {
	return plugins.Launch(ctx, plugins.Spec{Name: name, Path: p.Path, SHA256: p.SHA256, Args: p.Args, Config: config}, log)
}

// backendTypes lists the in-process types, sorted, for messages.
func backendTypes() []string {
	out := make([]string, 0, len(inProcess))
	for t := range inProcess {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
