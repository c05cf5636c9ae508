package artifact

import "sync"

// blobReaders counts the requests reading each blob, so that the blob of a file replaced or deleted
// meanwhile outlives them: a download that started on the old bytes finishes on them (a ranged
// request reopens the blob for every range, and an S3 object deleted mid-stream cuts the stream).
// Counting in process is exact where a grace period would only be likely; a blob whose deletion is
// pending when mlgate stops is an orphan that fsck finds.
type blobReaders struct {
	mu      sync.Mutex
	readers map[string]int    // blob key -> requests reading it
	pending map[string]func() // blob key -> its deletion, due when its last reader ends
}

// acquire registers a reader of key until release is called (once).
func (br *blobReaders) acquire(key string) (release func()) {
	br.mu.Lock()
	if br.readers == nil {
		br.readers = map[string]int{}
	}
	br.readers[key]++
	br.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
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
		})
	}
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
