package httpapi

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// Limits of JSON request bodies. Decoding JSON costs memory beyond the body's own bytes: every array
// element becomes a value, and an element of two bytes ("{}") can become a struct of a hundred. So a
// body is bounded three ways: its bytes (per route), the elements of any one array in it (per route),
// and, across all requests, the memory that large bodies hold while they are read, decoded and
// handled (a BodyBudget).
const (
	// DefaultMaxJSONBody is the body limit of a JSON route that declares none: MLflow's requests are a
	// few KB, and 1 MB is what MLflow declares for its largest, a log-batch (MAX_BATCH_LOG_REQUEST_SIZE
	// in mlflow/utils/validation.py). Routes that need more raise it (log-batch, log-inputs).
	DefaultMaxJSONBody = 1 << 20
	// DefaultMaxJSONItems bounds the elements of any one array of a JSON body on a route that declares
	// no limit: MLflow's batch limits are 1000 (metrics, datasets, entities per batch).
	DefaultMaxJSONItems = 1000
	// DefaultAmplification is how many times its body's bytes a call holds at its peak unless its route
	// says otherwise: the body, and the values decoded from it.
	DefaultAmplification = 2
	// MaxJSONDepth bounds the nesting of a JSON body. MLflow's requests nest four deep; the margin is for
	// fields of newer clients, which are skipped.
	MaxJSONDepth = 32
	// SmallJSONBody is the size up to which a body is read without waiting for the BodyBudget: such
	// bodies are most calls (log-metric, set-tag, get) and cost little, so they never queue behind a
	// large one.
	SmallJSONBody = 64 << 10
	// DefaultBodyBudget is the default size of the BodyBudget: the memory that calls with large JSON
	// bodies may hold at once, across all requests. With mlgate's baseline (about 30 MB) and the garbage
	// collector's headroom (the heap may grow to twice what is live), it keeps the process under 512 MiB.
	DefaultBodyBudget = 128 << 20
)

// BodyLimits bound one route's JSON body. Zero fields take the defaults above.
type BodyLimits struct {
	MaxBytes int64 // the body's bytes
	MaxItems int   // the elements of any one array in the body
	// Amplification is how many times its body's bytes a call holds at its peak: the body, what is
	// decoded from it, and what the store encodes and copies of it (a dataset profile is all three). The
	// BodyBudget charges a call its body's bytes times this.
	Amplification int64
}

func (l BodyLimits) maxBytes() int64 {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return DefaultMaxJSONBody
}

func (l BodyLimits) maxItems() int {
	if l.MaxItems > 0 {
		return l.MaxItems
	}
	return DefaultMaxJSONItems
}

func (l BodyLimits) amplification() int64 {
	if l.Amplification > 0 {
		return l.Amplification
	}
	return DefaultAmplification
}

// BodyBudget bounds the memory that calls with large JSON bodies hold at once: a call weighs its
// declared length (the route's limit when the length is unknown, a chunked body) times its route's
// amplification, and waits, first come first served, until that much of the budget is free; a call
// that weighs more than the whole budget waits for all of it, and so runs alone. It is released when
// the call's work is done, since the decoded values live that long. Safe for concurrent use.
type BodyBudget struct {
	size int64

	mu      sync.Mutex
	used    int64
	waiters list.List // of *budgetWaiter, oldest first
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the waiter holds its share
}

// NewBodyBudget makes a budget of size bytes (<= 0: DefaultBodyBudget).
func NewBodyBudget(size int64) *BodyBudget {
	if size <= 0 {
		size = DefaultBodyBudget
	}
	return &BodyBudget{size: size}
}

// acquire takes n bytes of the budget (at most its size), waiting for them. Its error is ctx's when the
// request ended first.
func (b *BodyBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.size)
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while the request ended: give the share back.
			b.used -= n
		default:
			b.waiters.Remove(elem)
		}
		b.grantLocked()
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

func (b *BodyBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked hands free budget to waiters in arrival order; a large waiter at the head holds back the
// smaller ones behind it, so that it is not starved.
func (b *BodyBudget) grantLocked() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*budgetWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// ReadJSONBody reads r's JSON body within lim, first taking its weight from budget when it is larger
// than SmallJSONBody (budget nil: no budget). It returns the body without surrounding whitespace and a release
// function that the caller must call once the values decoded from the body are no longer needed (after
// the response is computed). Errors: ErrTooLarge for a body over lim.MaxBytes, declared or read (before
// any of it is read when declared); ErrBadRequest for a body that cannot be read, or that nests deeper
// than MaxJSONDepth or has an array of more than lim.MaxItems elements (naming the array); the
// context's error when the request ended while waiting for the budget.
func ReadJSONBody(w http.ResponseWriter, r *http.Request, lim BodyLimits, budget *BodyBudget) ([]byte, func(), error) {
	maxBytes := lim.maxBytes()
	if r.ContentLength > maxBytes {
		return nil, nil, fmt.Errorf("%w: the request body has %d bytes; this call accepts at most %d bytes", ErrTooLarge, r.ContentLength, maxBytes)
	}
	length := r.ContentLength
	if length < 0 {
		length = maxBytes // chunked: it may be as large as the limit allows
	}
	release := func() {}
	if budget != nil && length > SmallJSONBody {
		n, err := budget.acquire(r.Context(), length*lim.amplification())
		if err != nil {
			return nil, nil, err
		}
		release = sync.OnceFunc(func() { budget.release(n) })
	}
	// Only a budgeted body is allocated whole up front; a small one grows with what actually arrives,
	// so that idle connections that declared a body hold no buffer for it.
	whole := length > SmallJSONBody && r.ContentLength > 0
	body, err := readAtMost(http.MaxBytesReader(w, r.Body, maxBytes), r.ContentLength, whole, maxBytes)
	if err == nil {
		body = bytes.TrimSpace(body)
		err = checkJSONShape(body, lim.maxItems(), MaxJSONDepth)
	}
	if err != nil {
		release()
		return nil, nil, err
	}
	return body, release, nil
}

// readAtMost reads a body limited by http.MaxBytesReader to limit bytes, of declared length (-1:
// unknown). With whole, it is read into one allocation of its declared length; otherwise in blocks (the
// first no larger than a small declared length) joined once, so that it costs twice its size at most,
// where append's growth would allocate five times its size on the way. ErrTooLarge past limit;
// ErrBadRequest when the body cannot be read.
func readAtMost(body io.Reader, declared int64, whole bool, limit int64) ([]byte, error) {
	fail := func(err error) error {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return fmt.Errorf("%w: the request body is longer than this call accepts (at most %d bytes)", ErrTooLarge, limit)
		}
		return fmt.Errorf("%w: reading request body: %w", ErrBadRequest, err)
	}
	const slack = 512 // room to see the end of a body of declared length without growing
	if whole {
		buf := make([]byte, 0, declared+slack)
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			if err != nil {
				return nil, fail(err)
			}
		}
	}
	const firstBlock = 4 << 10
	size := firstBlock
	if declared >= 0 && declared < firstBlock {
		size = int(declared) + 1 // one more byte than declared, to see the end in the first read
	}
	var blocks [][]byte
	total := 0
	for ; ; size = min(size*2, 1<<20) {
		block := make([]byte, size)
		n, err := io.ReadFull(body, block)
		if n > 0 {
			blocks = append(blocks, block[:n])
			total += n
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fail(err)
		}
	}
	if len(blocks) == 1 {
		return blocks[0], nil
	}
	out := make([]byte, 0, total)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out, nil
}

// checkJSONShape walks a JSON text once, allocating nothing per value, and refuses nesting deeper than
// maxDepth and arrays of more than maxItems elements, so that decoding it afterwards allocates in
// proportion to what the route accepts rather than to what a client sent. It checks only the shape:
// malformed JSON is left to the decoder. The error wraps ErrBadRequest and names the array's key.
func checkJSONShape(body []byte, maxItems, maxDepth int) error {
	type frame struct {
		array     bool
		items     int
		wantValue bool   // an array that expects its next element
		key       []byte // the object key the array is the value of, for messages
	}
	var (
		stack   []frame
		lastKey []byte // the last string closed, which is a key when ':' follows
		key     []byte // the key of the value that comes next
	)
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].array && stack[n-1].wantValue && c != ']' {
			top := &stack[n-1]
			top.wantValue = false
			if top.items++; top.items > maxItems {
				name := "the request"
				if top.key != nil {
					name = fmt.Sprintf("%q", top.key)
				}
				return fmt.Errorf("%w: %s has more than %d elements, the most this call accepts in one list; "+
					"split it across several requests", ErrBadRequest, name, maxItems)
			}
		}
		switch c {
		case '"':
			start := i + 1
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
			lastKey = body[start:min(i, len(body))]
		case ':':
			key = lastKey
		case '[', '{':
			if len(stack) == maxDepth {
				return fmt.Errorf("%w: the request nests deeper than %d levels", ErrBadRequest, maxDepth)
			}
			f := frame{array: c == '['}
			if f.array {
				f.wantValue, f.key = true, key
			}
			stack = append(stack, f)
			key = nil
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].array {
				stack[n-1].wantValue = true
			}
		}
	}
	return nil
}
