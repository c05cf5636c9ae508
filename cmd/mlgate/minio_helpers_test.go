package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// minioBinEnv names the MinIO server binary the MinIO fault test runs. `.ci/s3-servers.sh install`
// builds it into .tools/bin/minio, and `.ci/s3-servers.sh start` exports this variable.
const minioBinEnv = "MLGATE_TEST_MINIO_BIN"

// The MinIO fault test's credentials: its MinIO is its own, and mlgate reads them from these
// variables (set for the test, inherited by the mlgate process).
const (
	relMinioAccessKey = "mlgatereliability"
	relMinioSecretKey = "mlgatereliability-secret"
	relMinioAKEnv     = "MLGATE_RELIABILITY_S3_ACCESS_KEY"
	relMinioSKEnv     = "MLGATE_RELIABILITY_S3_SECRET_KEY"
	relMinioBucket    = "reliability"
)

// minioProc is a MinIO server run by the test, so that it can be killed and started again on the
// same address and data dir.
type minioProc struct {
	t             *testing.T
	bin, dataDir  string
	addr          string
	cmd           *exec.Cmd
	done          chan error
	logs          *syncBuffer
	client        *mgo.Client
	bucketCreated bool
}

// startMinio starts MinIO on a free 127.0.0.1 port with dataDir, waits until it serves S3, and
// creates the test bucket. MinIO is killed when the test ends.
func startMinio(t *testing.T, bin, dataDir string) *minioProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	client, err := mgo.New(addr, &mgo.Options{Creds: credentials.NewStaticV4(relMinioAccessKey, relMinioSecretKey, ""), MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := &minioProc{t: t, bin: bin, dataDir: dataDir, addr: addr, client: client}
	t.Cleanup(func() {
		if m.cmd != nil && m.cmd.ProcessState == nil {
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() && m.logs != nil {
			t.Logf("MinIO logs:\n%s", m.logs)
		}
	})
	m.start()
	return m
}

// start runs MinIO (again) and waits until it answers S3 requests: its health endpoint answers before
// it can serve them. The first start creates the bucket.
func (m *minioProc) start() {
	m.t.Helper()
	m.logs = &syncBuffer{}
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", m.addr, m.dataDir)
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+relMinioAccessKey, "MINIO_ROOT_PASSWORD="+relMinioSecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.cmd.Wait() }()
	poll.UntilOK(m.t, 60*time.Second, "MinIO to serve S3 requests", func() error {
		select {
		case err := <-m.done:
			m.t.Fatalf("MinIO exited during startup: %v\n%s", err, m.logs)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !m.bucketCreated {
			err := m.client.MakeBucket(ctx, relMinioBucket, mgo.MakeBucketOptions{})
			if err != nil && mgo.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
				return err
			}
			m.bucketCreated = true
		}
		ok, err := m.client.BucketExists(ctx, relMinioBucket)
		if err == nil && !ok {
			err = errors.New("the bucket is gone")
		}
		return err
	})
}

// kill stops MinIO with SIGKILL and waits for it to exit.
func (m *minioProc) kill() {
	m.t.Helper()
	if err := m.cmd.Process.Kill(); err != nil {
		m.t.Fatal(err)
	}
	<-m.done
}

// ownMinioConfig starts a MinIO of the test's own under a new temporary directory (skipping the test
// when the MinIO binary is not known) and writes an mlgate config whose one backend, "objects", is a
// bucket on it. It returns the MinIO, the directory and the config's path.
func ownMinioConfig(t *testing.T) (m *minioProc, dir, cfg string) {
	t.Helper()
	bin := os.Getenv(minioBinEnv)
	if bin == "" {
		t.Skipf("%s is unset: build MinIO with .ci/s3-servers.sh install, then eval \"$(.ci/s3-servers.sh start)\" or set %s=.tools/bin/minio", minioBinEnv, minioBinEnv)
	}
	dir = t.TempDir()
	m = startMinio(t, bin, filepath.Join(dir, "minio"))
	t.Setenv(relMinioAKEnv, relMinioAccessKey)
	t.Setenv(relMinioSKEnv, relMinioSecretKey)
	cfg = filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf(`backends:
  - name: objects
    type: minio
    config: {endpoint: "http://%s", bucket: %s, prefix: "mlgate/", path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: objects
`, m.addr, relMinioBucket, relMinioAKEnv, relMinioSKEnv)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return m, dir, cfg
}
