package boltstore

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlgate/mlgate/pkgtypes"
)

func TestEncoderTables(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"u64 0", appendU64(nil, 0), "0000000000000000"},
		{"u64 258", appendU64(nil, 258), "0000000000000102"},
		{"u64 max", appendU64(nil, math.MaxUint64), "ffffffffffffffff"},
		{"i64 min", appendI64(nil, math.MinInt64), "0000000000000000"},
		{"i64 -1", appendI64(nil, -1), "7fffffffffffffff"},
		{"i64 0", appendI64(nil, 0), "8000000000000000"},
		{"i64 1", appendI64(nil, 1), "8000000000000001"},
		{"i64 max", appendI64(nil, math.MaxInt64), "ffffffffffffffff"},
		{"f64s -inf", appendF64s(nil, math.Inf(-1)), "000fffffffffffff"},
		{"f64s -1", appendF64s(nil, -1), "400fffffffffffff"},
		{"f64s -0", appendF64s(nil, math.Copysign(0, -1)), "8000000000000000"},
		{"f64s 0", appendF64s(nil, 0), "8000000000000000"},
		{"f64s 1", appendF64s(nil, 1), "bff0000000000000"},
		{"f64s +inf", appendF64s(nil, math.Inf(1)), "fff0000000000000"},
		{"f64b nan", appendF64b(nil, math.Float64frombits(0x7ff8000000000123)), hex.EncodeToString(appendU64(nil, canonicalNaN))},
		{"f64b -0", appendF64b(nil, math.Copysign(0, -1)), "8000000000000000"},
		{"str0", appendStr0([]byte("x"), "ab"), "78616200"},
		{"semver release", appendSemverKey(nil, mustSemver(t, "1.2.3+b")),
			"0000000000000001" + "0000000000000002" + "0000000000000003" + "01"},
		{"semver prerelease", appendSemverKey(nil, semver{major: 1, pre: "rc.1"}),
			"0000000000000001" + "0000000000000000" + "0000000000000000" + "00" + "72632e3100"},
		{"prefixEnd", prefixEnd([]byte{1, 0xff}), "02"},
		{"prefixEnd all ff", prefixEnd([]byte{0xff, 0xff}), ""},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

var specialFloats = []float64{
	math.Inf(-1), -math.MaxFloat64, -1e300, -1, -math.SmallestNonzeroFloat64, math.Copysign(0, -1), 0,
	math.SmallestNonzeroFloat64, 0x1p-1022, 1, 1 + 1e-16, 1e300, math.MaxFloat64, math.Inf(1),
}

var specialInts = []int64{math.MinInt64, math.MinInt64 + 1, -256, -1, 0, 1, 255, 256, math.MaxInt64 - 1, math.MaxInt64}

func randFloat(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return specialFloats[r.IntN(len(specialFloats))]
	case 1:
		return math.Float64frombits(r.Uint64()) // any bit pattern, NaN excluded below
	case 2:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	}
	return float64(r.IntN(7) - 3)
}

func randInt(r *rand.Rand) int64 {
	if r.IntN(3) == 0 {
		return specialInts[r.IntN(len(specialInts))]
	}
	return int64(r.Uint64())
}

// checkOrder is the property: byte order of the encodings equals the order of the values, and decoding
// gives the value back.
func checkIntOrder(t *testing.T, a, b int64) {
	ka, kb := appendI64(nil, a), appendI64(nil, b)
	if bytes.Compare(ka, kb) != cmp.Compare(a, b) {
		t.Fatalf("i64 order: %d vs %d encodes as %x vs %x", a, b, ka, kb)
	}
	if decodeI64(ka) != a {
		t.Fatalf("i64 round trip of %d gave %d", a, decodeI64(ka))
	}
}

func checkFloatOrder(t *testing.T, a, b float64) {
	if math.IsNaN(a) || math.IsNaN(b) {
		return // NaN has its own class byte; it is never encoded with f64s
	}
	ka, kb := appendF64s(nil, a), appendF64s(nil, b)
	if bytes.Compare(ka, kb) != cmp.Compare(a, b) && !(a == 0 && b == 0) {
		t.Fatalf("f64s order: %g vs %g encodes as %x vs %x", a, b, ka, kb)
	}
	if a == 0 && b == 0 && !bytes.Equal(ka, kb) {
		t.Fatalf("f64s: %g and %g must encode the same", a, b)
	}
	if got := decodeF64s(ka); got != a {
		t.Fatalf("f64s round trip of %g gave %g", a, got)
	}
	if got := decodeF64b(appendF64b(nil, a)); math.Float64bits(got) != math.Float64bits(a) {
		t.Fatalf("f64b round trip of %g gave %g", a, got)
	}
}

func TestEncodingPreservesOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, a := range specialInts {
		for _, b := range specialInts {
			checkIntOrder(t, a, b)
		}
	}
	for _, a := range specialFloats {
		for _, b := range specialFloats {
			checkFloatOrder(t, a, b)
		}
	}
	for range 20000 {
		checkIntOrder(t, randInt(r), randInt(r))
		checkFloatOrder(t, randFloat(r), randFloat(r))
	}
}

func randSemver(r *rand.Rand) semver {
	nums := []uint64{0, 1, 2, 9, 10, 11, math.MaxUint64}
	v := semver{major: nums[r.IntN(len(nums))], minor: nums[r.IntN(len(nums))], patch: nums[r.IntN(len(nums))]}
	if r.IntN(2) == 0 {
		ids := []string{"0", "1", "2", "10", "alpha", "beta", "rc", "a-b", "-x", "9z", "Alpha"}
		n := 1 + r.IntN(3)
		for i := range n {
			if i > 0 {
				v.pre += "."
			}
			v.pre += ids[r.IntN(len(ids))]
		}
	}
	return v
}

// checkSemverOrder is what versions_order promises: across different MAJOR.MINOR.PATCH the key order is the
// precedence order; within one, a release sorts after every prerelease. Prereleases among themselves are
// only approximately ordered (byte-wise), which the store does not rely on.
func checkSemverOrder(t *testing.T, a, b semver, seqA, seqB int64) {
	ka, kb := versionOrderKey(7, a, seqA), versionOrderKey(7, b, seqB)
	got := bytes.Compare(ka, kb)
	sameCore := a.major == b.major && a.minor == b.minor && a.patch == b.patch
	switch {
	case !sameCore:
		if want := pkgtypes.CompareSemver(a.String(), b.String()); got != want {
			t.Fatalf("order of %s vs %s: keys compare %d, precedence %d", a, b, got, want)
		}
	case a.pre == "" && b.pre != "" && got <= 0, a.pre != "" && b.pre == "" && got >= 0:
		t.Fatalf("release and prerelease misordered: %s vs %s", a, b)
	case a.pre == b.pre && got != cmp.Compare(seqA, seqB):
		t.Fatalf("equal precedence %s vs %s not ordered by seq", a, b)
	}
	parsed, err := parseSemver(a.String())
	if err != nil || parsed != a {
		t.Fatalf("format/parse round trip of %+v: %+v, %v", a, parsed, err)
	}
	if decoded, ok := decodeSemverKey(appendSemverKey(nil, a)); !ok || decoded != a {
		t.Fatalf("key round trip of %+v: %+v, %v", a, decoded, ok)
	}
}

func TestSemverKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		checkSemverOrder(t, randSemver(r), randSemver(r), int64(r.IntN(3)), int64(r.IntN(3)))
	}
}

func FuzzKeyOrder(f *testing.F) {
	f.Add(int64(-1), int64(1), 0.5, -0.5, "1.0.0", "1.0.0-rc.1")
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), math.Inf(-1), math.Copysign(0, -1), "10.0.0", "9.99.99")
	f.Add(int64(0), int64(0), 0.0, 0.0, "0.0.1-a.b+c", "0.0.1-a-b")
	f.Fuzz(func(t *testing.T, a, b int64, x, y float64, sa, sb string) {
		checkIntOrder(t, a, b)
		checkFloatOrder(t, x, y)
		va, errA := parseSemver(sa)
		vb, errB := parseSemver(sb)
		if errA == nil && errB == nil {
			checkSemverOrder(t, va, vb, 1, 2)
		}
	})
}

func mustSemver(t *testing.T, s string) semver {
	t.Helper()
	v, err := parseSemver(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
