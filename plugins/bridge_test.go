package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/mem"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/memory"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// smallPartMemory is a memory backend that accepts 1 KiB middle parts, so the suite stays fast.
func smallPartMemory(context.Context, json.RawMessage) (backends.Backend, error) {
	return memory.NewWithMinPartSize(1 << 10), nil
}

// newBridge connects a Client to a server over a real gRPC connection (a unix socket in this process)
// and configures it with f.
func newBridge(t testing.TB, f backends.Factory) *Client {
	// Closing the client shuts the server down through go-plugin's controller; stopping it here too
	// would race inside go-plugin.
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginName: &GRPCPlugin{Factory: f}})
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*Client)
	if _, err := c.Configure(context.Background(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBridgeConformance(t *testing.T) {
	allRaw(t)
	checkUploads(t, true, false)
	t.Run("bare", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend { return newBridge(t, smallPartMemory) })
	})
	t.Run("checked", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend {
			return backends.Checked("bridge", newBridge(t, smallPartMemory))
		})
	})
}

// TestBridgeProtoCodec runs the suite with the plain protobuf codec, the fallback a host may choose.
func TestBridgeProtoCodec(t *testing.T) {
	useChunkCodec = false
	t.Cleanup(func() { useChunkCodec = true })
	backendtest.Run(t, func(t *testing.T) backends.Backend { return newBridge(t, smallPartMemory) })
}

func TestConfigureOnce(t *testing.T) {
	c := newBridge(t, smallPartMemory)
	if _, err := c.Configure(t.Context(), []byte(`{}`)); err != nil {
		t.Fatalf("same config again: %v", err)
	}
	if _, err := c.Configure(t.Context(), []byte(`{"other":1}`)); err == nil {
		t.Fatal("another config was accepted")
	}
}

func TestNotConfigured(t *testing.T) {
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginName: &GRPCPlugin{Factory: smallPartMemory}})
	defer client.Close()
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.(*Client).Stat(t.Context(), "a"); err == nil {
		t.Fatal("stat before configure succeeded")
	}
}

// TestDeadServer: a plugin that went away answers every call with ErrUnavailable, and a reader whose
// stream breaks fails instead of hanging.
func TestDeadServer(t *testing.T) {
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginName: &GRPCPlugin{Factory: smallPartMemory}})
	defer client.Close()
	raw, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*Client)
	if _, err := c.Configure(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	server.Stop()
	if _, err := c.Stat(t.Context(), "a"); !errors.Is(err, backends.ErrUnavailable) || !isTransport(err) {
		t.Fatalf("stat on a dead plugin: %v", err)
	}
	if _, err := c.Put(t.Context(), "a", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("put on a dead plugin: %v", err)
	}
}

func TestChunkCodec(t *testing.T) {
	c := chunkCodec{}
	payload := bytes.Repeat([]byte("0123456789"), 1000)
	out, err := c.Marshal(&pb.GetResponse{Msg: &pb.GetResponse_Chunk{Chunk: payload}})
	if err != nil {
		t.Fatal(err)
	}
	// Split the frame across buffers, as the transport may deliver it.
	flat := out.Materialize()
	out.Free()
	split := mem.BufferSlice{mem.SliceBuffer(flat[:1]), mem.SliceBuffer(flat[1:7]), mem.SliceBuffer(flat[7:])}
	msg := &pb.GetResponse{Msg: &pb.GetResponse_Chunk{Chunk: make([]byte, 0, 1<<20)}}
	buf := msg.GetChunk()[:1]
	if err := c.Unmarshal(split, msg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.GetChunk(), payload) {
		t.Fatal("chunk changed")
	}
	if &msg.GetChunk()[0] != &buf[0] {
		t.Error("the chunk buffer was not reused")
	}
	// Header messages and other types go through protobuf.
	info := &pb.GetResponse{Msg: &pb.GetResponse_Info{Info: &pb.Info{Key: "k", Size: 3}}}
	out, err = c.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Unmarshal(out, msg); err != nil || msg.GetInfo().GetKey() != "k" || msg.GetInfo().GetSize() != 3 {
		t.Fatalf("info: %v %v", msg, err)
	}
	out, err = c.Marshal(&pb.KeyRequest{Key: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var kr pb.KeyRequest
	if err := c.Unmarshal(out, &kr); err != nil || kr.GetKey() != "x" {
		t.Fatalf("key request: %v %v", &kr, err)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{7, 1})}, msg); err == nil {
		t.Fatal("unknown tag accepted")
	}
}
