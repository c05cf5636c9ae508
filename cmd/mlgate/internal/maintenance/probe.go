package maintenance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
)

// healthTimeout bounds Health: a backend that does not answer within it is unhealthy.
const healthTimeout = 10 * time.Second

// Health asks b for its Descriptor and Stats a probe key (blobkey.Probe) that cannot exist: a healthy
// backend answers backends.ErrNotFound, both within ten seconds. version is the Descriptor's
// "<name> <version>", or "?" when Describe failed. The error is nil for a healthy backend, else
// Describe's or Stat's error, or one saying that the Stat of an absent key succeeded.
func Health(ctx context.Context, b Backend) (version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	d, err := b.Blobs.Describe(ctx)
	if err != nil {
		return "?", err
	}
	version = d.Name + " " + d.Version
	if _, err := b.Blobs.Stat(ctx, blobkey.Probe()); !errors.Is(err, backends.ErrNotFound) {
		if err == nil {
			err = errors.New("stat of an absent key succeeded")
		}
		return version, err
	}
	return version, nil
}

// RoundTripSize is the size of RoundTrip's probe blob: above a typical copy buffer, so that the get
// takes several reads.
const RoundTripSize = 1<<20 + 517

// Step is one timed step of a RoundTrip.
type Step struct {
	Name string // "put", "get", "stat" or "delete"
	Took time.Duration
}

// RoundTripReport is what a RoundTrip did.
type RoundTripReport struct {
	Size   int    // bytes of the probe blob
	SHA256 string // their hex sha256
	Steps  []Step // the steps that passed, in order
}

// RoundTrip puts a probe blob of RoundTripSize random bytes under a fresh blobkey.Probe key with its
// sha256, gets it back and compares size and sha256, stats it, deletes it and checks that it is gone,
// timing each step. Once the put succeeded the probe is deleted whatever fails next. Errors name the
// backend and the step (`backend "<name>": get: ...`), wrapping the backend's error where there is one;
// the report then holds the steps that passed before.
func RoundTrip(ctx context.Context, b Backend) (RoundTripReport, error) {
	data := make([]byte, RoundTripSize)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	rep := RoundTripReport{Size: len(data), SHA256: want}
	key := blobkey.Probe()
	start := time.Now()
	step := func(name string) {
		rep.Steps = append(rep.Steps, Step{Name: name, Took: time.Since(start)})
		start = time.Now()
	}
	info, err := b.Blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{SHA256: want})
	if err != nil {
		return rep, fmt.Errorf("backend %q: put: %w", b.Name, err)
	}
	// From here on the probe exists: remove it whatever fails next.
	deleted := false
	defer func() {
		if !deleted {
			_ = b.Blobs.Delete(context.WithoutCancel(ctx), key)
		}
	}()
	if info.Size != int64(len(data)) || info.SHA256 != want {
		return rep, fmt.Errorf("backend %q: put stored %d bytes with sha256 %s, want %d and %s", b.Name, info.Size, info.SHA256, len(data), want)
	}
	step("put")
	rc, _, err := b.Blobs.Get(ctx, key, backends.All)
	if err != nil {
		return rep, fmt.Errorf("backend %q: get: %w", b.Name, err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return rep, fmt.Errorf("backend %q: get: reading: %w", b.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != int64(len(data)) || got != want {
		return rep, fmt.Errorf("backend %q: get returned %d bytes with sha256 %s, want %d and %s", b.Name, n, got, len(data), want)
	}
	step("get")
	if st, err := b.Blobs.Stat(ctx, key); err != nil || st.Size != int64(len(data)) {
		return rep, fmt.Errorf("backend %q: stat: size %d, %v", b.Name, st.Size, err)
	}
	step("stat")
	if err := b.Blobs.Delete(ctx, key); err != nil {
		return rep, fmt.Errorf("backend %q: delete: %w", b.Name, err)
	}
	deleted = true
	if _, err := b.Blobs.Stat(ctx, key); !errors.Is(err, backends.ErrNotFound) {
		return rep, fmt.Errorf("backend %q: blob still there after delete: %v", b.Name, err)
	}
	step("delete")
	return rep, nil
}
