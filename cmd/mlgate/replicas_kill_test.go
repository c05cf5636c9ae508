package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// The SIGKILL test's shape.
const (
	killReplicaUploaders = 6
	killAckedOnB         = 12 // uploads acknowledged by B before it is killed
	killAckedAfter       = 3  // per uploader, by A after the kill
	killSlowSize         = 8 << 20
)

// attempt is one upload of TestReplicasSIGKILLDuringUploads: its URL path after the base, what was sent,
// and whether it was acknowledged (201) or its outcome is unknown (the connection to B broke).
type attempt struct {
	path  string
	file  writtenFile
	acked bool
}

// TestReplicasSIGKILLDuringUploads: six uploaders send package files to two replicas alternately; once B
// has acknowledged some, and while a large upload to B is half sent, B gets SIGKILL. The uploaders then
// use A alone, which must answer every request (each uploader gets three more files acknowledged). Then,
// through A and through B started again: every acknowledged file is listed and downloads whole with its
// sha256; a file whose upload was cut is either listed and whole, or absent (404) — never listed but
// short, or listed with other bytes; and the large upload cut mid-body is absent.
func TestReplicasSIGKILLDuringUploads(t *testing.T) {
	r := startReplicas(t, "--log-level", "warn")
	hc := newPoolClient(2 * killReplicaUploaders)
	ctx := context.Background()
	version := func(u int) string { return pkgURL("", "default", fmt.Sprintf("kill-u%d", u), "1.0.0", "") }

	var ackedOnB, killed atomic.Bool
	var ackedB atomic.Int64
	var after [killReplicaUploaders]atomic.Int64
	var stop, failed atomic.Bool
	attempts := make([][]attempt, killReplicaUploaders)
	errs := make([]error, killReplicaUploaders)
	var wg sync.WaitGroup
	for u := range killReplicaUploaders {
		wg.Go(func() {
			for k := 0; !stop.Load(); k++ {
				replica := (u + k) % 2
				if !r.isUp(1) {
					replica = 0
				}
				wasKilled := killed.Load()
				path := version(u) + fmt.Sprintf("/f%d.bin", k)
				seed := uint64(u)<<32 | uint64(k)
				size := int64(256<<10 + seed%(1792<<10))
				sum, err := uploadGen(ctx, hc, r.base(replica)+path, seed, size)
				a := attempt{path: path, file: writtenFile{size, genSum(seed, size)}, acked: err == nil}
				if err != nil && (replica == 0 || !isConnError(err)) {
					errs[u] = fmt.Errorf("upload %d through replica %d: %w", k, replica, err)
					failed.Store(true)
					return
				}
				attempts[u] = append(attempts[u], a)
				if err == nil && sum != a.file.sum {
					errs[u] = fmt.Errorf("upload %d: acknowledged with sha256 %s, sent %s", k, sum, a.file.sum)
					failed.Store(true)
					return
				}
				switch {
				case err == nil && replica == 1 && ackedB.Add(1) >= killAckedOnB:
					ackedOnB.Store(true)
				case err == nil && replica == 0 && wasKilled:
					after[u].Add(1)
				}
			}
		})
	}
	poll.Until(t, time.Minute, fmt.Sprintf("B to acknowledge %d uploads", killAckedOnB), func() bool {
		return ackedOnB.Load() || failed.Load()
	})
	// A large upload through B, half sent when B dies.
	slowPath := version(0) + "/slow.bin"
	slow := startUpload(t, r.base(1)+slowPath, killSlowSize)
	slow.write(t, killSlowSize/2)
	r.kill(1)
	killed.Store(true)
	slow.pw.CloseWithError(errors.New("server gone"))
	select {
	case resp := <-slow.resp:
		resp.Body.Close()
		t.Fatalf("the upload cut by SIGKILL got an answer: %d", resp.StatusCode)
	case <-slow.err:
	}
	poll.UntilOK(t, time.Minute, fmt.Sprintf("A to acknowledge %d uploads per uploader after the kill", killAckedAfter), func() error {
		if failed.Load() {
			return nil
		}
		for u := range after {
			if n := after[u].Load(); n < killAckedAfter {
				return fmt.Errorf("uploader %d: %d", u, n)
			}
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	for u, err := range errs {
		if err != nil {
			t.Errorf("uploader %d: %v", u, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	check := func(base string) {
		t.Helper()
		var acked, cut, cutVisible int
		for u := range killReplicaUploaders {
			listed, err := listFiles(ctx, hc, base+version(u), 100)
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string]listedFile{}
			for _, f := range listed {
				byPath[version(u)+"/"+f.Path] = f
			}
			for _, a := range attempts[u] {
				f, ok := byPath[a.path]
				delete(byPath, a.path)
				if a.acked {
					acked++
				} else {
					cut++
				}
				switch {
				case !ok && a.acked:
					t.Errorf("%s: acknowledged, not listed through %s", a.path, base)
				case !ok:
					if code, _, err := doHTTP(hc, http.MethodGet, base+a.path, nil, 0); err != nil || code != http.StatusNotFound {
						t.Errorf("%s: cut, not listed, but GET through %s answers %d %v", a.path, base, code, err)
					}
				case f.Size != a.file.size || f.SHA256 != a.file.sum:
					t.Errorf("%s: listed through %s with %d bytes, sha256 %s; sent %d bytes, sha256 %s", a.path, base, f.Size, f.SHA256, a.file.size, a.file.sum)
				default:
					if !a.acked {
						cutVisible++
					}
					if err := downloadCheck(ctx, hc, base+a.path, a.file.size, a.file.sum); err != nil {
						t.Errorf("listed through %s: %v", base, err)
					}
				}
			}
			for p, f := range byPath {
				t.Errorf("%s listed through %s (%d bytes), never uploaded", p, base, f.Size)
			}
		}
		if code, _, err := doHTTP(hc, http.MethodGet, base+slowPath, nil, 0); err != nil || code != http.StatusNotFound {
			t.Errorf("the upload cut mid-body: GET through %s answers %d %v, want 404", base, code, err)
		}
		t.Logf("through %s: %d acknowledged uploads whole, %d cut by the kill (%d of them stored whole)", base, acked, cut, cutVisible)
	}
	check(r.base(0))
	r.start(1)
	check(r.base(1))
}
