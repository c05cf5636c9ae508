package plugins

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/backends/minio"
	"github.com/mlgate/mlgate/backends/s3"
	"github.com/mlgate/mlgate/backends/s3test"
)

// newConfiguredBridge is newBridge with a real backend config: the plugin side builds the backend from
// cfg through Configure, exactly as a launched plugin does.
func newConfiguredBridge(t *testing.T, f backends.Factory, cfg any) *Client {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginName: &GRPCPlugin{Factory: f}})
	// Closing the client shuts the server (and the backend it built) down; see newBridge.
	t.Cleanup(func() { _ = client.Close() })
	d, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := d.(*Client)
	if _, err := c.Configure(context.Background(), raw); err != nil {
		t.Fatalf("configure %s: %v", raw, err)
	}
	return c
}

// TestBridgeConformanceLocalfs runs the suite against localfs served through the bridge.
func TestBridgeConformanceLocalfs(t *testing.T) {
	checkUploads(t, true, true) // TestPluginGRPCConn has brokers on both sides; small bodies go in chunks
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		// Small parts keep the multipart tests cheap; the bridge must carry the limit in Describe.
		return newConfiguredBridge(t, localfs.Factory, localfs.Config{Root: t.TempDir(), MinPartSize: 1 << 10})
	})
}

// TestBridgeConformanceS3 runs the suite against the s3 and minio backends served through the bridge,
// each on both real S3 servers. Parts are S3's minimum of 5 MiB, so only the bare variant runs here:
// the checked wrapper is already covered over the bridge with the memory backend.
func TestBridgeConformanceS3(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		t.Run("s3", func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				return newConfiguredBridge(t, s3.Factory, s3.Config{
					Endpoint: s.Endpoint, Bucket: s.Bucket, ForcePathStyle: true,
					AccessKeyEnv: s3test.AccessKeyEnv, SecretKeyEnv: s3test.SecretKeyEnv,
					PartSize: 5 << 20, Prefix: "bridge-s3-test",
				})
			})
		})
		t.Run("minio", func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				return newConfiguredBridge(t, minio.Factory, minio.Config{
					Endpoint: s.Endpoint, Bucket: s.Bucket, ForcePathStyle: true,
					AccessKeyEnv: s3test.AccessKeyEnv, SecretKeyEnv: s3test.SecretKeyEnv,
					PartSize: 5 << 20, Prefix: "bridge-minio-test",
				})
			})
		})
	})
}
