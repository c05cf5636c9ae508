package artifact

import (
	"sync"
	"time"
)

// blobReaders counts the requests reading each blob, so that the blob of a file replaced or deleted
// meanwhile outlives them: a download that started on the old bytes finishes on them (a ranged
// request reopens the blob for every range, and an S3 object deleted mid-stream cuts the stream).
// Counting in process is exact where a grace period would only be likely; a blob whose deletion is
// pending when mlgate stops is an orphan that fsck finds.
//
// A download redirected to a presigned URL is not seen to end, so it is counted as a hold instead
// (see hold): a reader for a fixed time, which is the best a process that does not see the transfer
// can do.
type blobReaders struct {
	mu      sync.Mutex
	readers map[string]int       // blob key -> requests reading it (a key's hold counts as one)
	pending map[string]func()    // blob key -> its deletion, due when its last reader ends
	held    map[string]time.Time // blob key -> when its hold ends

	// now and afterFunc are the clock of holds: time.Now and time.AfterFunc unless a test injects its own.
	now       func() time.Time
	afterFunc func(d time.Duration, f func())
}

// acquire registers a reader of key until release is called (once).
func (br *blobReaders) acquire(key string) (release func()) {
	br.mu.Lock()
	br.addLocked(key)
	br.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { br.release(key) }) }
}

func (br *blobReaders) addLocked(key string) {
	if br.readers == nil {
		br.readers = map[string]int{}
	}
	br.readers[key]++
}

// release ends one reader of key and starts the key's pending deletion if that was the last one.
func (br *blobReaders) release(key string) {
	br.mu.Lock()
	br.readers[key]--
	var del func()
	if br.readers[key] == 0 {
		delete(br.readers, key)
		del = br.pending[key]
		delete(br.pending, key)
	}
	br.mu.Unlock()
	if del != nil {
		go del() // not on the request's time: a delete may wait on a slow backend
	}
}

// hold keeps key read for d from now: its deletion waits until then (and for its other readers). A
// key holds at most one reader and one timer however many holds it gets, each extending the end, so
// a popular file redirected a thousand times a second costs one map entry, not a thousand timers.
func (br *blobReaders) hold(key string, d time.Duration) {
	br.mu.Lock()
	defer br.mu.Unlock()
	until := br.clockNow().Add(d)
	if end, ok := br.held[key]; ok {
		if until.After(end) {
			br.held[key] = until
		}
		return
	}
	if br.held == nil {
		br.held = map[string]time.Time{}
	}
	br.held[key] = until
	br.addLocked(key)
	br.schedule(key, d)
}

// schedule checks key's hold after d, ending it when its end has come and looking again at the new
// end otherwise (a later hold extended it).
func (br *blobReaders) schedule(key string, d time.Duration) {
	after := br.afterFunc
	if after == nil {
		after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	after(d, func() {
		br.mu.Lock()
		if left := br.held[key].Sub(br.clockNow()); left > 0 {
			br.schedule(key, left)
			br.mu.Unlock()
			return
		}
		delete(br.held, key)
		br.mu.Unlock()
		br.release(key)
	})
}

func (br *blobReaders) clockNow() time.Time {
	if br.now != nil {
		return br.now()
	}
	return time.Now()
}

// discard runs del, which deletes the blob key, now when nobody reads key, else when its last reader
// ends. It reports whether del ran now.
func (br *blobReaders) discard(key string, del func()) bool {
	br.mu.Lock()
	if br.readers[key] > 0 {
		if br.pending == nil {
			br.pending = map[string]func(){}
		}
		br.pending[key] = del
		br.mu.Unlock()
		return false
	}
	br.mu.Unlock()
	del()
	return true
}

// inUse reports whether a request reads key or key's deletion waits for one to end.
func (br *blobReaders) inUse(key string) bool {
	br.mu.Lock()
	defer br.mu.Unlock()
	_, pending := br.pending[key]
	return br.readers[key] > 0 || pending
}

// keys returns the blob keys that a request reads or holds now.
func (br *blobReaders) keys() []string {
	br.mu.Lock()
	defer br.mu.Unlock()
	out := make([]string, 0, len(br.readers))
	for k := range br.readers {
		out = append(out, k)
	}
	return out
}
