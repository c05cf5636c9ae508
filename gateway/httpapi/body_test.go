package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckJSONShape(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		ok         bool
		mention    string // a part of the error message
	}{
		{"empty", ``, true, ""},
		{"three items", `{"a":[1,2,3]}`, true, ""},
		{"four items", `{"a":[1,2,3,4]}`, false, `"a" has more than 3 elements`},
		{"empty arrays", `{"a":[],"b":[ ],"c":[[],[],[]]}`, true, ""},
		{"nested objects count once", `{"metrics":[{"k":[1,2]},{"k":[3]},{}]}`, true, ""},
		{"four objects", `{"metrics":[{},{},{},{}]}`, false, `"metrics" has more than 3`},
		{"commas in strings", `{"a":["x,y,z,w", "\",\",", "]"]}`, true, ""},
		{"escaped quote before bracket", `{"a\"":[1,2,3],"b":"\\"}`, true, ""},
		{"top-level array", `[1,2,3,4]`, false, "the request has more than 3"},
		{"key of the inner array", `{"outer":{"inner":[1,2,3,4]}}`, false, `"inner"`},
		{"depth at the limit", strings.Repeat("[", 5) + strings.Repeat("]", 5), true, ""},
		{"too deep", strings.Repeat("[", 6) + strings.Repeat("]", 6), false, "deeper than 5"},
		{"too deep in objects", strings.Repeat(`{"a":`, 6) + "1" + strings.Repeat("}", 6), false, "deeper than 5"},
		{"unterminated string", `{"a":"[[[[[[[[`, true, ""},
	} {
		err := checkJSONShape([]byte(tc.body), 3, 5)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && (!errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.mention)):
			t.Errorf("%s: %v, want ErrBadRequest mentioning %q", tc.name, err, tc.mention)
		}
	}
}

// chunked hides a reader's length from the HTTP machinery, as a chunked request body does.
type chunked struct{ io.Reader }

func TestReadJSONBodyLimits(t *testing.T) {
	lim := BodyLimits{MaxBytes: 100, MaxItems: 2}
	read := func(body io.Reader, length int64) ([]byte, error) {
		r := httptest.NewRequest(http.MethodPost, "/", body)
		r.ContentLength = length
		got, release, err := ReadJSONBody(httptest.NewRecorder(), r, lim, NewBodyBudget(0))
		if err == nil {
			release()
		}
		return got, err
	}
	if got, err := read(strings.NewReader(" {\"a\":[1,2]}\n"), 13); err != nil || string(got) != `{"a":[1,2]}` {
		t.Fatalf("small body: %q %v", got, err)
	}
	if got, err := read(chunked{strings.NewReader(`{"a":[1]}`)}, -1); err != nil || string(got) != `{"a":[1]}` {
		t.Fatalf("chunked body: %q %v", got, err)
	}
	// A declared length over the limit is refused before a byte is read.
	unread := &countingReader{r: strings.NewReader(strings.Repeat(" ", 200))}
	if _, err := read(unread, 200); !errors.Is(err, ErrTooLarge) || unread.n != 0 {
		t.Fatalf("declared 200 bytes: %v after reading %d bytes", err, unread.n)
	}
	if _, err := read(chunked{strings.NewReader(strings.Repeat(" ", 101))}, -1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked 101 bytes: %v", err)
	}
	if _, err := read(strings.NewReader(`{"a":[1,2,3]}`), 13); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("three items: %v", err)
	}
	// A chunked body of many blocks comes back whole.
	big := `"` + strings.Repeat("x", 3<<20) + `"`
	r := httptest.NewRequest(http.MethodPost, "/", chunked{strings.NewReader(big)})
	r.ContentLength = -1
	got, release, err := ReadJSONBody(httptest.NewRecorder(), r, BodyLimits{MaxBytes: 4 << 20}, nil)
	if err != nil || string(got) != big {
		t.Fatalf("3 MiB chunked body: %d bytes, %v", len(got), err)
	}
	release()
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestBodyBudgetBoundsLargeBodies checks that large bodies wait for the budget (the largest alone),
// small ones never wait, and a request that ends while waiting gives its place up.
func TestBodyBudgetBoundsLargeBodies(t *testing.T) {
	budget := NewBodyBudget(3 * SmallJSONBody)
	lim := BodyLimits{MaxBytes: 1 << 20, Amplification: 1}
	type held struct {
		release func()
		err     error
	}
	start := func(ctx context.Context, size int) (chan held, *io.PipeWriter) {
		pr, pw := io.Pipe()
		r := httptest.NewRequest(http.MethodPost, "/", pr).WithContext(ctx)
		r.ContentLength = int64(size)
		out := make(chan held, 1)
		go func() {
			_, release, err := ReadJSONBody(httptest.NewRecorder(), r, lim, budget)
			out <- held{release, err}
		}()
		return out, pw
	}
	send := func(pw *io.PipeWriter, size int) {
		go func() {
			_, _ = pw.Write(bytes.Repeat([]byte(" "), size))
			_ = pw.Close()
		}()
	}
	wait := func(what string, ch chan held) held {
		t.Helper()
		select {
		case h := <-ch:
			if h.err != nil {
				t.Fatalf("%s: %v", what, h.err)
			}
			return h
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting", what)
			return held{}
		}
	}

	// Two bodies of two thirds of the budget: the second waits until the first is released.
	first, pw1 := start(context.Background(), 2*SmallJSONBody)
	send(pw1, 2*SmallJSONBody)
	h1 := wait("first large body", first)
	second, pw2 := start(context.Background(), 2*SmallJSONBody)
	send(pw2, 2*SmallJSONBody)
	select {
	case h := <-second:
		t.Fatalf("second large body read while the first holds the budget: %v", h.err)
	case <-time.After(50 * time.Millisecond):
	}
	// A small body does not queue behind it.
	small, pw3 := start(context.Background(), SmallJSONBody)
	send(pw3, SmallJSONBody)
	wait("small body", small).release()
	// A waiter whose request ends leaves the queue; the budget is intact afterwards.
	ctx, cancel := context.WithCancel(context.Background())
	gone, _ := start(ctx, 2*SmallJSONBody)
	cancel()
	if h := <-gone; !errors.Is(h.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", h.err)
	}
	h1.release()
	h1.release() // releasing twice gives nothing back twice
	h2 := wait("second large body", second)
	// A body larger than the whole budget waits for all of it.
	huge, pw4 := start(context.Background(), 5*SmallJSONBody)
	send(pw4, 5*SmallJSONBody)
	select {
	case h := <-huge:
		t.Fatalf("a body over the budget read while another holds part of it: %v", h.err)
	case <-time.After(50 * time.Millisecond):
	}
	h2.release()
	wait("body over the budget", huge).release()
	budget.mu.Lock()
	defer budget.mu.Unlock()
	if budget.used != 0 || budget.waiters.Len() != 0 {
		t.Fatalf("budget after everything was released: used %d, %d waiters", budget.used, budget.waiters.Len())
	}
}
