package s3util

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mlgate/mlgate/backends"
)

// A multipart upload with an expected whole-object sha256 carries it in its id, because S3 has no
// place for it that ListParts or CompleteMultipartUpload return and the backends keep no state.
const sumIDPrefix = "sha256:"

// ChecksumSHA256 turns a hex sha256 into the base64 form of S3's x-amz-checksum-sha256 header, or ""
// when sum is no hex sha256.
func ChecksumSHA256(sum string) string {
	b, err := hex.DecodeString(sum)
	if err != nil || len(b) != sha256.Size {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// MinPartSize is S3's minimum size of every part but the last.
const MinPartSize = 5 << 20

// EncodeUploadID joins S3's upload id and an expected sha256 ("" for none) into the backend's id.
func EncodeUploadID(s3ID, sum string) string {
	if sum == "" {
		return s3ID
	}
	return sumIDPrefix + sum + ":" + s3ID
}

// DecodeUploadID splits an id made by EncodeUploadID. Anything else is passed to S3 as is, which
// answers NoSuchUpload for ids it did not make.
func DecodeUploadID(id string) (s3ID, sum string) {
	const n = len(sumIDPrefix) + 64
	if strings.HasPrefix(id, sumIDPrefix) && len(id) > n+1 && id[n] == ':' {
		return id[n+1:], id[len(sumIDPrefix):n]
	}
	return id, ""
}

// CheckParts applies S3's rules for a part list to the stored parts: each part exists with its ETag,
// and every part but the last has at least MinPartSize bytes.
func CheckParts(parts, stored []backends.Part) error {
	byNumber := make(map[int]backends.Part, len(stored))
	for _, p := range stored {
		byNumber[p.Number] = p
	}
	for i, p := range parts {
		s, ok := byNumber[p.Number]
		switch {
		case !ok:
			return fmt.Errorf("%w: part %d was not uploaded", backends.ErrInvalidPart, p.Number)
		case strings.Trim(p.ETag, `"`) != s.ETag:
			return fmt.Errorf("%w: part %d has etag %s, not %s", backends.ErrInvalidPart, p.Number, s.ETag, p.ETag)
		case i < len(parts)-1 && s.Size < MinPartSize:
			return fmt.Errorf("%w: part %d has %d bytes, below the minimum of %d for all but the last part", backends.ErrInvalidPart, p.Number, s.Size, MinPartSize)
		}
	}
	return nil
}

// Spool copies r into a temporary file (removed by the caller), checking ctx between reads.
func Spool(ctx context.Context, r io.Reader, name string) (*os.File, error) {
	f, err := os.CreateTemp("", "mlgate-"+name+"-part-*")
	if err != nil {
		return nil, fmt.Errorf("%s: spool part: %w", name, err)
	}
	buf := make([]byte, 256<<10)
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		var n int
		n, err = r.Read(buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				err = fmt.Errorf("%s: spool part: %w", name, werr)
				break
			}
		}
		if err == io.EOF {
			err = nil
			break
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
