package artifact

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzNormalizeRange: whatever the header, a satisfiable outcome lists at most maxRanges ranges, each
// with 0 <= first <= last < size, which is all http.ServeContent needs to answer correctly.
func FuzzNormalizeRange(f *testing.F) {
	for _, seed := range []string{"bytes=-0", "bytes=5-4", "bytes=-", "bytes=0-99999999999999999999", "bytes=-5,0-0,,9-",
		"items=1-2", "bytes= 1-2 ", "BYTES=0-", "bytes=18446744073709551616-"} {
		f.Add(seed, int64(10000))
		f.Add(seed, int64(0))
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			return
		}
		value, outcome := normalizeRange(header, size)
		if outcome != rangeSatisfiable {
			if value != "" {
				t.Fatalf("%q: outcome %d with value %q", header, outcome, value)
			}
			return
		}
		set, ok := strings.CutPrefix(value, "bytes=")
		if !ok {
			t.Fatalf("%q -> %q", header, value)
		}
		specs := strings.Split(set, ",")
		if len(specs) > maxRanges {
			t.Fatalf("%q -> %d ranges", header, len(specs))
		}
		for _, spec := range specs {
			a, b, _ := strings.Cut(spec, "-")
			first, err1 := strconv.ParseInt(a, 10, 64)
			last, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil || first < 0 || first > last || last >= size {
				t.Fatalf("%q on %d bytes -> %q", header, size, value)
			}
		}
	})
}
