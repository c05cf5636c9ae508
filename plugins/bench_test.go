package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
)

// BenchmarkBridge compares 1 GiB Put and Get in process against the same through a real plugin child
// process (cmd/mlgate-backend localfs, over go-plugin's unix socket): with raw transfers (the default:
// plugin/raw), and with the chunked gRPC streams (raw Put and Get off) at several chunk sizes and with
// each tuning switched off in turn. localfs is rooted on tmpfs (/dev/shm) when there is one, so the
// disk does not hide the bridge; memory is no good here, as holding 1 GiB blobs makes its Put
// GC-bound (87 MB/s in process). Besides MB/s it reports the CPU-seconds per GiB of the host
// (host-cpu-s/GiB) and of the plugin (plugin-cpu-s/GiB). Run with:
//
//	go test -run '^$' -bench Bridge -benchtime 3x ./plugins/
//
// The chunked results chose ChunkSize (see its comment); raw Put's are in rawput.go.
func BenchmarkBridge(b *testing.B) {
	const size = 1 << 30
	if testing.Short() {
		b.Skip("moves GiBs")
	}
	root := benchRoot(b)
	local, err := localfs.New(root)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("inprocess", func(b *testing.B) { benchPutGet(b, local, size, 0) })

	launchLocalfsBench := func(b *testing.B) (*Supervised, int) {
		path, sum := build(b, "github.com/mlgate/mlgate/cmd/mlgate-backend")
		cfg, _ := json.Marshal(map[string]string{"root": root})
		be, err := Launch(context.Background(), Spec{Name: "bench", Path: path, SHA256: sum, Args: []string{"localfs"}, Config: cfg}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s := be.(*Supervised)
		b.Cleanup(func() { _ = s.Close() })
		return s, s.cur.Load().client.ReattachConfig().Pid
	}
	tuned, pid := launchLocalfsBench(b)
	b.Run("plugin/raw", func(b *testing.B) { benchPutGet(b, tuned, size, pid) })
	// The rest measure the chunked streams, the fallback when no raw connection can be made.
	defer chunked()()
	for _, cs := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("plugin/chunked/chunk=%dKiB", cs>>10), func(b *testing.B) {
			defer setChunk(cs)()
			benchPutGet(b, tuned, size, pid)
		})
	}
	b.Run("plugin/chunked+protobuf-codec/chunk=1024KiB", func(b *testing.B) {
		useChunkCodec = false
		defer func() { useChunkCodec = true }()
		benchPutGet(b, tuned, size, pid)
	})
	// grpc-go's default windows on the host side: this affects Get (the host receives); Put's
	// receiver is the plugin, whose server options are fixed at 16 MiB.
	useWindows = false
	plain, ppid := launchLocalfsBench(b)
	useWindows = true
	b.Run("plugin/chunked+default-windows/chunk=1024KiB", func(b *testing.B) { benchPutGet(b, plain, size, ppid) })
	b.Run("plugin/chunked+default-windows+protobuf-codec/chunk=1024KiB", func(b *testing.B) {
		useChunkCodec = false
		defer func() { useChunkCodec = true }()
		benchPutGet(b, plain, size, ppid)
	})
}

// chunked turns raw Puts and Gets off (host side) until restore is called.
func chunked() (restore func()) {
	useRawPut, useRawGet = false, false
	return func() { useRawPut, useRawGet = true, true }
}

// BenchmarkBridgeSmallPut measures the fixed cost of a raw upload against a chunked one on small
// bodies, through a real plugin process serving the memory backend (no disk, no fsync); it chose
// rawPutMinSize. Run with:
//
//	go test -run '^$' -bench BridgeSmallPut -benchtime 1000x ./plugins/
func BenchmarkBridgeSmallPut(b *testing.B) {
	path, sum := build(b, "github.com/mlgate/mlgate/cmd/mlgate-backend")
	be, err := Launch(context.Background(), Spec{Name: "bench", Path: path, SHA256: sum, Args: []string{"memory"}, Config: []byte(`{}`)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	pid := be.(*Supervised).cur.Load().client.ReattachConfig().Pid
	for _, size := range []int64{1 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		for _, mode := range []string{"chunked", "raw"} {
			b.Run(fmt.Sprintf("size=%dKiB/%s", size>>10, mode), func(b *testing.B) {
				old := rawPutMinSize
				rawPutMinSize = 0
				useRawPut = mode == "raw"
				defer func() { rawPutMinSize, useRawPut = old, true }()
				b.SetBytes(size)
				cpu := startCPU(pid)
				for b.Loop() {
					if _, err := be.Put(context.Background(), "bench/small", &pattern{n: size}, size, backends.PutOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b, size)
			})
		}
	}
}

// benchRoot is a fresh directory on tmpfs if possible.
func benchRoot(b *testing.B) string {
	if d, err := os.MkdirTemp("/dev/shm", "mlgate-bench-"); err == nil {
		b.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	return b.TempDir()
}

func setChunk(n int) (restore func()) {
	old := chunkSize
	chunkSize = n
	return func() { chunkSize = old }
}

func benchPutGet(b *testing.B, be backends.Backend, size int64, pid int) {
	ctx := context.Background()
	const key = "bench/blob"
	b.Run("Put", func(b *testing.B) {
		b.SetBytes(size)
		raw0 := rawUploads.Load()
		cpu := startCPU(pid)
		for b.Loop() {
			if _, err := be.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b, size)
		if pid > 0 {
			b.ReportMetric(float64(rawUploads.Load()-raw0)/float64(b.N), "raw/op") // 1: the upload went raw
		}
	})
	b.Run("Get", func(b *testing.B) {
		if _, err := be.Stat(ctx, key); err != nil {
			if _, err := be.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		buf := make([]byte, 1<<20)
		b.SetBytes(size)
		cpu := startCPU(pid)
		for b.Loop() {
			rc, _, err := be.Get(ctx, key, backends.All)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{rc}, buf)
			_ = rc.Close()
			if err != nil || n != size {
				b.Fatalf("get: %d bytes, %v", n, err)
			}
		}
		cpu.report(b, size)
	})
}

// cpuMark is the CPU time of this process and of the plugin process at the start of a measurement.
type cpuMark struct {
	pid        int
	self, plug time.Duration
}

func startCPU(pid int) cpuMark { return cpuMark{pid: pid, self: selfCPU(), plug: procCPU(pid)} }

func (m cpuMark) report(b *testing.B, size int64) {
	gib := float64(b.N) * float64(size) / (1 << 30)
	b.ReportMetric((selfCPU()-m.self).Seconds()/gib, "host-cpu-s/GiB")
	if m.pid > 0 {
		b.ReportMetric((procCPU(m.pid)-m.plug).Seconds()/gib, "plugin-cpu-s/GiB")
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of pid from /proc (Linux); 0 elsewhere.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}
