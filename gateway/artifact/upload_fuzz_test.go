package artifact_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
)

// Whatever a client sends as a multipart/form-data upload, OpenUpload and the reader it returns either
// yield at most the size limit of file bytes or fail with a client error (400 or 413), never anything a
// caller would report as internal.
func FuzzOpenUploadMultipart(f *testing.F) {
	const boundary = "XyZ"
	for _, seed := range []string{
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\nhello\r\n--XyZ--\r\n",
		"--XyZ\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\ndefault\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--XyZ--\r\n",
		"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n",
		"--XyZ\r\n\r\n", "", "--XyZ--", "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + string(bytes.Repeat([]byte("a"), 100)),
	} {
		f.Add([]byte(seed), "multipart/form-data; boundary="+boundary)
	}
	const limit = 64
	svc := artifact.New(artifact.Deps{MaxFileSize: limit})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r, err := http.NewRequest(http.MethodPut, "http://x/f", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Content-Type", contentType)
		up, err := svc.OpenUpload(r)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, up.Reader)
			if n > limit {
				t.Fatalf("read %d bytes past the limit of %d", n, limit)
			}
		}
		if err != nil && !errors.Is(err, httpapi.ErrBadRequest) && !errors.Is(err, httpapi.ErrTooLarge) {
			t.Fatalf("error is not a client error: %v", err)
		}
	})
}
