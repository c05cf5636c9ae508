// Command mlgate-backend serves one of mlgate's built-in storage backends as a plugin, so that every
// built-in can also run out of process:
//
//	mlgate-backend localfs|memory|minio|s3
//
// mlgate starts it (plugins.Launch) with the backend's config; run by hand it only prints that it is a
// plugin. In mlgate's config:
//
//	backends:
//	  - name: disk
//	    plugin: {path: /usr/lib/mlgate/mlgate-backend, sha256: <sha256sum of it>, args: [localfs]}
//	    config: {root: /var/lib/mlgate/blobs}
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/backends/minio"
	"github.com/mlgate/mlgate/backends/s3"
	"github.com/mlgate/mlgate/plugins"
)

// factories is the explicit list of built-in backends this binary serves.
var factories = backends.Registry{
	"localfs": localfs.Factory,
	"memory":  memory.Factory,
	"minio":   minio.Factory,
	"s3":      s3.Factory,
}

func main() {
	if len(os.Args) != 2 || factories[os.Args[1]] == nil {
		names := make([]string, 0, len(factories))
		for n := range factories {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: mlgate-backend <%s>\n\nServes a built-in mlgate storage backend as a plugin; mlgate starts it.\n",
			strings.Join(names, "|"))
		os.Exit(2)
	}
	plugins.Serve(factories[os.Args[1]])
}
