package source

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fakeS3 serves ListObjectsV2 and GetObject (with Range) for one bucket, path-style.
type fakeS3 struct {
	bucket  string
	objects map[string][]byte
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(p, "/")
	if bucket != f.bucket {
		w.WriteHeader(404)
		fmt.Fprint(w, `<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>`)
		return
	}
	if key == "" && r.URL.Query().Get("list-type") == "2" {
		type content struct {
			Key  string
			Size int64
		}
		var out struct {
			XMLName     xml.Name `xml:"ListBucketResult"`
			Name        string
			Prefix      string
			KeyCount    int
			IsTruncated bool
			Contents    []content
		}
		out.Name, out.Prefix = f.bucket, r.URL.Query().Get("prefix")
		var keys []string
		for k := range f.objects {
			if strings.HasPrefix(k, out.Prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			out.Contents = append(out.Contents, content{k, int64(len(f.objects[k]))})
		}
		out.KeyCount = len(keys)
		w.Header().Set("Content-Type", "application/xml")
		xml.NewEncoder(w).Encode(out)
		return
	}
	data, ok := f.objects[key]
	if !ok {
		w.WriteHeader(404)
		fmt.Fprint(w, `<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
		return
	}
	w.Header().Set("ETag", `"etag1"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func isolateAWSEnv(t *testing.T, access, secret string) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
}

func TestS3ArtifactsFake(t *testing.T) {
	isolateAWSEnv(t, "test", "test-secret")
	big := randomBytes(2<<20 + 3)
	fs := &fakeS3{bucket: "mlruns", objects: map[string][]byte{
		"1/abc/artifacts/model/MLmodel":       []byte("flavors: {}"),
		"1/abc/artifacts/data/big.bin":        big,
		"1/abc/artifacts/dir/":                nil, // a directory marker
		"1/abcdef/artifacts/not-this-run.txt": []byte("x"),
	}}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	c, err := newClient(Config{URL: "http://tracking.invalid", S3Endpoint: srv.URL, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	if got := walkAll(t, c, "s3://mlruns/1/abc/artifacts"); got != "data/big.bin:2097155 model/MLmodel:11" {
		t.Fatalf("%q", got)
	}
	if got := readAll(t, c, "s3://mlruns/1/abc/artifacts/", "data/big.bin"); got != string(big) {
		t.Fatal("content differs")
	}
	// A resume reads from an offset with a ranged GetObject.
	st, _ := c.artifactStore("s3://mlruns/1/abc/artifacts")
	o, err := st.open(t.Context(), "data/big.bin", 1<<20)
	if err != nil || o.size != int64(len(big)) {
		t.Fatalf("ranged open: size %d err %v", o.size, err)
	}
	o.body.Close()
	if _, _, err := c.OpenArtifact(t.Context(), "s3://mlruns/1/abc/artifacts", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}

// TestS3ArtifactsMinIO runs against the MinIO that .ci/s3-servers.sh starts (same environment
// variables as the backends' tests).
func TestS3ArtifactsMinIO(t *testing.T) {
	ep, bucket := os.Getenv("MLGATE_TEST_MINIO_ENDPOINT"), os.Getenv("MLGATE_TEST_S3_BUCKET")
	access, secret := os.Getenv("MLGATE_TEST_S3_ACCESS_KEY"), os.Getenv("MLGATE_TEST_S3_SECRET_KEY")
	if ep == "" || bucket == "" || access == "" || secret == "" {
		t.Skip("MLGATE_TEST_MINIO_ENDPOINT, MLGATE_TEST_S3_BUCKET, MLGATE_TEST_S3_ACCESS_KEY or MLGATE_TEST_S3_SECRET_KEY is unset: start the servers with eval \"$(.ci/s3-servers.sh start)\"")
	}
	isolateAWSEnv(t, access, secret)
	c, err := newClient(Config{URL: "http://tracking.invalid", S3Endpoint: ep, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := c.s3Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("importer-source-test/%d", time.Now().UnixNano())
	data := randomBytes(1<<20 + 5)
	for k, v := range map[string][]byte{"a/b/c.bin": data, "top.txt": []byte("top")} {
		if _, err := cli.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + k), Body: bytes.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cli.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + k)})
		})
	}
	uri := "s3://" + bucket + "/" + prefix
	if got := walkAll(t, c, uri); got != "a/b/c.bin:1048581 top.txt:3" {
		t.Fatalf("%q", got)
	}
	if got := readAll(t, c, uri, "a/b/c.bin"); got != string(data) {
		t.Fatal("content differs")
	}
}
