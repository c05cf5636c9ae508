// Package s3test locates the S3 servers that .ci/s3-servers.sh starts for integration tests.
//
// The script exports MLGATE_TEST_MINIO_ENDPOINT, MLGATE_TEST_VERSITYGW_ENDPOINT,
// MLGATE_TEST_S3_ACCESS_KEY, MLGATE_TEST_S3_SECRET_KEY and MLGATE_TEST_S3_BUCKET (one bucket name on
// both servers). Tests skip, saying why, only when these are unset.
package s3test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Env var names; AccessKeyEnv and SecretKeyEnv double as the names backends read credentials from.
const (
	AccessKeyEnv = "MLGATE_TEST_S3_ACCESS_KEY"
	SecretKeyEnv = "MLGATE_TEST_S3_SECRET_KEY"
	BucketEnv    = "MLGATE_TEST_S3_BUCKET"
)

// Server is one running S3 server.
type Server struct {
	Name     string // "minio" or "versitygw"
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
}

var servers = []struct{ name, env string }{
	{"minio", "MLGATE_TEST_MINIO_ENDPOINT"},
	{"versitygw", "MLGATE_TEST_VERSITYGW_ENDPOINT"},
}

// ForEach runs fn as a subtest per server, skipping a server whose endpoint (or the shared
// credentials) is not in the environment.
func ForEach(t *testing.T, fn func(t *testing.T, s Server)) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			fn(t, Lookup(t, s.name))
		})
	}
}

// Lookup returns the named server ("minio" or "versitygw"), or skips t when its environment is unset.
func Lookup(t testing.TB, name string) Server {
	t.Helper()
	for _, s := range servers {
		if s.name != name {
			continue
		}
		ep := os.Getenv(s.env)
		if ep == "" {
			t.Skipf("%s is unset: start the servers with eval \"$(.ci/s3-servers.sh start)\"", s.env)
		}
		for _, v := range []string{AccessKeyEnv, SecretKeyEnv, BucketEnv} {
			if os.Getenv(v) == "" {
				t.Skipf("%s is unset: start the servers with eval \"$(.ci/s3-servers.sh start)\"", v)
			}
		}
		return Server{Name: name, Endpoint: ep, Bucket: os.Getenv(BucketEnv)}
	}
	t.Fatalf("s3test: unknown server %q", name)
	return Server{}
}

// Keys lists the keys of the objects under prefix in s's bucket, behind every backend's back, so that a
// test sees what is really stored.
func Keys(t testing.TB, s Server, prefix string) []string {
	t.Helper()
	c := directClient(t, s)
	var keys []string
	for obj := range c.ListObjects(t.Context(), s.Bucket, mgo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list %s/%s: %v", s.Bucket, prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	return keys
}

// Put stores data at key in s's bucket, behind every backend's back.
func Put(t testing.TB, s Server, key string, data []byte) {
	t.Helper()
	c := directClient(t, s)
	if _, err := c.PutObject(t.Context(), s.Bucket, key, bytes.NewReader(data), int64(len(data)), mgo.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s/%s: %v", s.Bucket, key, err)
	}
}

// directClient is a minio-go client of s, for looking at and placing objects behind a backend's back.
func directClient(t testing.TB, s Server) *mgo.Client {
	t.Helper()
	c, err := mgo.New(strings.TrimPrefix(s.Endpoint, "http://"), &mgo.Options{
		Creds:  credentials.NewStaticV4(os.Getenv(AccessKeyEnv), os.Getenv(SecretKeyEnv), ""),
		Region: "us-east-1", BucketLookup: mgo.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
