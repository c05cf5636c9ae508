package boltstore

import (
	"encoding/binary"
	"math"
)

// Key encoders. Every one appends to b so a key is built in one allocation; the layout in buckets.go names
// them. Decoders take exactly the bytes their encoder wrote.

const signBit = uint64(1) << 63

func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func decodeU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// appendI64 flips the sign bit so that big-endian byte order equals signed order.
func appendI64(b []byte, v int64) []byte { return appendU64(b, uint64(v)^signBit) }

func decodeI64(b []byte) int64 { return int64(decodeU64(b) ^ signBit) }

// appendF64s writes a float so that byte order equals numeric order: negative values have every bit
// inverted (larger magnitude sorts lower), non-negative values get the sign bit set (above all negatives).
// -0 becomes +0 because they are equal numbers. NaN has no place in numeric order: callers give it its own
// class byte and write f64s(0) after it.
func appendF64s(b []byte, v float64) []byte {
	if v == 0 {
		v = 0
	}
	bits := math.Float64bits(v)
	if bits&signBit != 0 {
		bits = ^bits
	} else {
		bits |= signBit
	}
	return appendU64(b, bits)
}

func decodeF64s(b []byte) float64 {
	bits := decodeU64(b)
	if bits&signBit != 0 {
		bits &^= signBit
	} else {
		bits = ^bits
	}
	return math.Float64frombits(bits)
}

// canonicalNaN is the only NaN written to disk, so that two NaN points of a metric are the same point.
var canonicalNaN = math.Float64bits(math.NaN())

// appendF64b writes the raw IEEE bits (identity, not order) with every NaN made canonical.
func appendF64b(b []byte, v float64) []byte {
	if math.IsNaN(v) {
		return appendU64(b, canonicalNaN)
	}
	return appendU64(b, math.Float64bits(v))
}

func decodeF64b(b []byte) float64 { return math.Float64frombits(decodeU64(b)) }

// appendStr0 terminates s with 0x00 so that a shorter string sorts before its extensions and more parts can
// follow. s must not contain NUL; the callers validate that.
func appendStr0(b []byte, s string) []byte { return append(append(b, s...), 0) }

// Release sorts after every prerelease of the same MAJOR.MINOR.PATCH.
const (
	semverPrerelease byte = 0x00
	semverRelease    byte = 0x01
)

// appendSemverKey writes u64(major) u64(minor) u64(patch), then 0x01 for a release or 0x00 str0(prerelease).
// Prerelease identifiers compare byte-wise, which only approximates semver precedence (rc.10 < rc.9); the
// order across different MAJOR.MINOR.PATCH is exact. Build metadata is not part of the key.
func appendSemverKey(b []byte, v semver) []byte {
	b = appendU64(appendU64(appendU64(b, v.major), v.minor), v.patch)
	if v.pre == "" {
		return append(b, semverRelease)
	}
	return appendStr0(append(b, semverPrerelease), v.pre)
}

// decodeSemverKey is the inverse of appendSemverKey for a b holding exactly one semverKey.
func decodeSemverKey(b []byte) (semver, bool) {
	if len(b) < 25 {
		return semver{}, false
	}
	v := semver{major: decodeU64(b), minor: decodeU64(b[8:]), patch: decodeU64(b[16:])}
	switch rest := b[24:]; {
	case len(rest) == 1 && rest[0] == semverRelease:
		return v, true
	case len(rest) > 2 && rest[0] == semverPrerelease && rest[len(rest)-1] == 0:
		v.pre = string(rest[1 : len(rest)-1])
		return v, true
	}
	return semver{}, false
}

// hasPrefix reports whether k starts with prefix; bytes.HasPrefix under a name that reads well in cursor
// loops.
func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

// prefixEnd returns the smallest key greater than every key starting with prefix, or nil if none exists
// (prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
