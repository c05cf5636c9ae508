package gateway

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
)

// uploadBody is the file content of an upload request, as a stream.
type uploadBody struct {
	reader      io.Reader
	size        int64 // -1 when unknown (chunked or multipart)
	contentType string
}

// openUploadBody finds the file bytes of a PUT: the raw body, or the "file" field of a
// multipart/form-data body, read as a stream and never buffered whole. The size limit applies before
// reading (Content-Length) and while reading (a chunked body is counted and cut off).
func (s *Server) openUploadBody(w http.ResponseWriter, r *http.Request) (*uploadBody, error) {
	limit := s.cfg.MaxFileSize
	if r.ContentLength > limit && !isMultipart(r) {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, r.ContentLength, limit)
	}
	if !isMultipart(r) {
		return &uploadBody{
			reader:      &cappedReader{r: clientErrors{r.Body}, remaining: limit, limit: limit},
			size:        r.ContentLength,
			contentType: r.Header.Get("Content-Type"),
		}, nil
	}
	// Multipart framing adds a little to the body, so allow a small margin on the whole request and
	// enforce the exact limit on the file part itself.
	const framingAllowance = 1 << 20
	if r.ContentLength > limit+framingAllowance {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d bytes", ErrTooLarge, r.ContentLength, limit)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: multipart body: %v", ErrBadRequest, err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: multipart body has no \"file\" field", ErrBadRequest)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: multipart body: %v", ErrBadRequest, err)
		}
		if part.FormName() != "file" {
			// Other fields (GitLab clients send "status") are small; skip them without keeping them.
			if _, err := io.Copy(io.Discard, io.LimitReader(part, framingAllowance)); err != nil {
				return nil, fmt.Errorf("%w: multipart body: %v", ErrBadRequest, err)
			}
			continue
		}
		return &uploadBody{
			reader:      &cappedReader{r: clientErrors{part}, remaining: limit, limit: limit},
			size:        -1,
			contentType: part.Header.Get("Content-Type"),
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
		return 0, fmt.Errorf("%w: body exceeds the limit of %d bytes", ErrTooLarge, c.limit)
	}
	if int64(len(p)) > c.remaining+1 {
		p = p[:c.remaining+1]
	}
	n, err := c.r.Read(p)
	c.remaining -= int64(n)
	if c.remaining < 0 {
		return 0, fmt.Errorf("%w: body exceeds the limit of %d bytes", ErrTooLarge, c.limit)
	}
	return n, err
}

// clientErrors marks failures to read the request body (a client that hung up, a body shorter than
// its Content-Length, broken multipart framing) as client errors, so they are never logged as 500s.
type clientErrors struct{ r io.Reader }

func (c clientErrors) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%w: reading request body: %w", ErrBadRequest, err)
	}
	return n, err
}
