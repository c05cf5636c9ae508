package artifact

import (
	"math"
	"strconv"
	"strings"
)

// maxRanges bounds the ranges one request may ask for. RFC 9110 (section 14.2) lets a server refuse a
// set of many small ranges, a known way to make it work hard for one request: on S3 every range of a
// download is a GET of its own.
const maxRanges = 16

// rangeOutcome is what a Range header asks of a representation.
type rangeOutcome int

const (
	rangeIgnored       rangeOutcome = iota // serve the whole representation (200)
	rangeSatisfiable                       // serve the ranges of the normalized header (206)
	rangeUnsatisfiable                     // 416, "Content-Range: bytes */<size>"
)

// normalizeRange reads a Range header against a representation of size bytes by RFC 9110 section 14,
// and returns the equivalent header as absolute, clamped "first-last" pairs of the ranges that can be
// served, which is what http.ServeContent understands without surprises. (ServeContent answers
// "bytes=-0" with a 206 and the inverted "Content-Range: bytes 10000-9999/10000", and takes a number
// too large for int64 for a broken header rather than for "to the end".)
//
//   - A unit other than bytes is ignored, as RFC 9110 requires.
//   - A syntax error (a first-pos after its last-pos, a missing or non-decimal number, no range at all)
//     and more than maxRanges ranges are unsatisfiable: answering 416 tells the client that its ranges
//     were not honoured, where a 200 with the whole file might be taken for the part it asked for.
//   - A range starting at or after the end, and a suffix of length 0, cannot be served and are dropped;
//     a last-pos or suffix running past the end (however large) is clamped to it. Nothing left is
//     unsatisfiable.
//   - On an empty representation a suffix range selects all of it, which no Content-Range can describe:
//     the Range is ignored and the empty whole is served.
func normalizeRange(header string, size int64) (string, rangeOutcome) {
	unit, set, ok := strings.Cut(header, "=")
	if !ok {
		return "", rangeUnsatisfiable
	}
	if !strings.EqualFold(strings.Trim(unit, " \t"), "bytes") {
		return "", rangeIgnored
	}
	var out strings.Builder
	specs, wholeEmpty := 0, false
	// Empty list elements ("0-1,,5-6") are allowed and ignored (RFC 9110 section 5.6.1).
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue
		}
		if specs++; specs > maxRanges {
			return "", rangeUnsatisfiable
		}
		firstText, lastText, ok := strings.Cut(spec, "-")
		if !ok {
			return "", rangeUnsatisfiable
		}
		var first, last int64
		if firstText == "" { // suffix-range: the last n bytes
			n, ok := decimal(lastText)
			if !ok {
				return "", rangeUnsatisfiable
			}
			if n == 0 {
				continue
			}
			if size == 0 {
				wholeEmpty = true
				continue
			}
			first, last = size-min(n, size), size-1
		} else {
			var ok bool
			if first, ok = decimal(firstText); !ok {
				return "", rangeUnsatisfiable
			}
			last = math.MaxInt64
			if lastText != "" {
				if last, ok = decimal(lastText); !ok || last < first {
					return "", rangeUnsatisfiable
				}
			}
			if first >= size {
				continue
			}
			last = min(last, size-1)
		}
		if out.Len() == 0 {
			out.WriteString("bytes=")
		} else {
			out.WriteByte(',')
		}
		out.WriteString(strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10))
	}
	switch {
	case out.Len() > 0:
		return out.String(), rangeSatisfiable
	case specs > 0 && wholeEmpty:
		return "", rangeIgnored
	default:
		return "", rangeUnsatisfiable
	}
}

// decimal parses 1*DIGIT, saturating at math.MaxInt64: a position that large lies past the end of
// any file, which is all that the range rules need to know about it.
func decimal(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue // keep checking that the rest are digits
		}
		n = n*10 + d
	}
	return n, true
}
