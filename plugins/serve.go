package plugins

import (
	"os"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/mlgate/mlgate/backends"
)

// Serve is the whole main of a backend plugin: it speaks go-plugin's handshake on stdout, serves the
// backend protocol over gRPC and returns when the host stops the plugin. The backend is built by f on
// the host's first Configure call, from the config JSON of the plugin's entry in mlgate's config.
//
// Run by hand (without the host's magic cookie), Serve prints a short explanation and exits with
// status 1.
func Serve(f backends.Factory) {
	go exitWithParent(os.Getppid(), time.Second)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(&GRPCPlugin{Factory: f}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
	})
}

// exitWithParent ends the plugin when the mlgate that started it is gone. go-plugin stops its plugins
// when mlgate exits normally, but a SIGKILLed mlgate cannot, and the orphan would keep its files and
// sockets open; its parent then becomes another process, which is what this watches for.
func exitWithParent(parent int, every time.Duration) {
	for {
		time.Sleep(every)
		if os.Getppid() != parent {
			os.Exit(2)
		}
	}
}
