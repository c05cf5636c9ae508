package artifact

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// UploadBody is the file content of an upload request, as a stream.
type UploadBody struct {
	Reader      io.Reader
	Size        int64 // -1 when unknown (chunked or multipart)
	ContentType string
}

// OpenUpload finds the file bytes of a PUT: the raw body, or the "file" field of a multipart/form-data
// body, read as a stream and never buffered whole. The size limit applies before reading
// (Content-Length: httpapi.ErrTooLarge) and while reading (a chunked body is counted and cut off with
// ErrTooLarge). Broken multipart framing or a form without a "file" field is httpapi.ErrBadRequest, and
// so is every later failure to read the client's body.
func (a *Service) OpenUpload(r *http.Request) (*UploadBody, error) {
	limit := a.maxFileSize
	if r.ContentLength > limit && !isMultipart(r) {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", httpapi.ErrTooLarge, r.ContentLength, limit)
	}
	if !isMultipart(r) {
		return &UploadBody{
			Reader:      &cappedReader{r: ClientErrors(r.Body), remaining: limit, limit: limit},
			Size:        r.ContentLength,
			ContentType: r.Header.Get("Content-Type"),
		}, nil
	}
	// Multipart framing adds a little to the body, so allow a small margin on the whole request and
	// enforce the exact limit on the file part itself.
	const framingAllowance = 1 << 20
	if r.ContentLength > limit+framingAllowance {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", httpapi.ErrTooLarge, r.ContentLength, limit)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: multipart body: %w", httpapi.ErrBadRequest, err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: multipart body has no \"file\" field", httpapi.ErrBadRequest)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: multipart body: %w", httpapi.ErrBadRequest, err)
		}
		if part.FormName() != "file" {
			// Other fields (GitLab clients send "status") are small; skip them without keeping them.
			if _, err := io.Copy(io.Discard, io.LimitReader(part, framingAllowance)); err != nil {
				return nil, fmt.Errorf("%w: multipart body: %w", httpapi.ErrBadRequest, err)
			}
			continue
		}
		return &UploadBody{
			Reader:      &cappedReader{r: ClientErrors(part), remaining: limit, limit: limit},
			Size:        -1,
			ContentType: part.Header.Get("Content-Type"),
		}, nil
	}
}

func isMultipart(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// cappedReader fails with ErrTooLarge as soon as more than limit bytes arrive, so an oversize chunked
// upload is cut off rather than stored.
type cappedReader struct {
	r         io.Reader
	remaining int64
	limit     int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.remaining < 0 {
		return 0, fmt.Errorf("%w: body exceeds the limit of %d bytes", httpapi.ErrTooLarge, c.limit)
	}
	if int64(len(p)) > c.remaining+1 {
		p = p[:c.remaining+1]
	}
	n, err := c.r.Read(p)
	c.remaining -= int64(n)
	if c.remaining < 0 {
		return 0, fmt.Errorf("%w: body exceeds the limit of %d bytes", httpapi.ErrTooLarge, c.limit)
	}
	return n, err
}

// ClientErrors marks failures to read a request body (a client that hung up, a body shorter than its
// Content-Length, broken multipart framing) as client errors (httpapi.ErrBadRequest), so they are never
// logged as 500s.
func ClientErrors(r io.Reader) io.Reader { return clientErrors{r} }

type clientErrors struct{ r io.Reader }

func (c clientErrors) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%w: reading request body: %w", httpapi.ErrBadRequest, err)
	}
	return n, err
}

// ChecksumHeader returns the lowercase X-Checksum-SHA256 value, "" when absent, or
// httpapi.ErrBadRequest when it is not 64 hex characters.
func ChecksumHeader(r *http.Request) (string, error) {
	v := strings.TrimSpace(r.Header.Get("X-Checksum-SHA256"))
	if v == "" {
		return "", nil
	}
	v = strings.ToLower(v)
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: X-Checksum-SHA256 must be 64 hex characters", httpapi.ErrBadRequest)
	}
	return v, nil
}

// contentTypeOf picks the type a download is served with: the stored one, else one guessed from the
// extension, else bytes.
func contentTypeOf(f *metadata.File) string {
	if f.ContentType != "" {
		return f.ContentType
	}
	return guessContentType(f.Path)
}

func guessContentType(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// CleanContentType keeps a client-declared type only when it parses, so a header cannot smuggle
// arbitrary text into later responses; otherwise (and when none was declared) it guesses from the
// file's extension.
func CleanContentType(declared, filePath string) string {
	declared = strings.TrimSpace(declared)
	if declared == "" || len(declared) > metadata.MaxContentTypeLen {
		return guessContentType(filePath)
	}
	mediaType, params, err := mime.ParseMediaType(declared)
	if err != nil || mediaType == "application/x-www-form-urlencoded" {
		return guessContentType(filePath)
	}
	return mime.FormatMediaType(mediaType, params)
}
