package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlgate/mlgate/gateway/importer"
)

// ErrIncomplete is returned with a report whose Failed list is not empty: the other files were
// transferred.
var ErrIncomplete = errors.New("some files failed")

// Report is what a push or a pull did; `--json` prints it as is.
type Report struct {
	Operation string `json:"operation"` // "push" or "pull"
	Package   string `json:"package"`   // model@semver or candidate:iid
	Files     int    `json:"files"`     // files of the push or of the package pulled
	Bytes     int64  `json:"bytes"`     // their total size
	// FilesTransferred and BytesTransferred count the file bodies sent or received by this run (for a
	// resumed download, only the bytes that were missing).
	FilesTransferred int   `json:"files_transferred"`
	BytesTransferred int64 `json:"bytes_transferred"`
	// FilesSkipped were already in place with the same sha256 and were not sent or received.
	FilesSkipped int `json:"files_skipped"`
	// FilesResumed were downloads continued from a partial file an earlier pull left.
	FilesResumed int           `json:"files_resumed"`
	Seconds      float64       `json:"seconds"`
	Failed       []FileFailure `json:"failed"`
	Elapsed      time.Duration `json:"-"`
}

// FileFailure names a file that could not be transferred and why.
type FileFailure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// tally collects a report from concurrent file workers.
type tally struct {
	mu     sync.Mutex
	report Report
	start  time.Time
}

func newTally(op string, pkg Package) *tally {
	return &tally{report: Report{Operation: op, Package: pkg.String(), Failed: []FileFailure{}}, start: time.Now()}
}

// transferred counts a file whose body was sent or received.
func (t *tally) transferred() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.FilesTransferred++
}

// moved counts n body bytes sent or received, by any attempt, finished or not.
func (t *tally) moved(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.BytesTransferred += n
}

// planned records what the transfer covers.
func (t *tally) planned(files int, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.Files, t.report.Bytes = files, bytes
}

func (t *tally) skipped() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.FilesSkipped++
}

func (t *tally) resumed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.FilesResumed++
}

func (t *tally) failed(path string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report.Failed = append(t.report.Failed, FileFailure{Path: path, Error: err.Error()})
}

// finish returns the report, and ErrIncomplete (naming the files) when some failed, or ctx's error
// when it was interrupted.
func (t *tally) finish(ctx context.Context) (*Report, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.report
	r.Elapsed = time.Since(t.start)
	r.Seconds = r.Elapsed.Seconds()
	sort.Slice(r.Failed, func(i, j int) bool { return r.Failed[i].Path < r.Failed[j].Path })
	if ctx.Err() != nil {
		return &r, fmt.Errorf("interrupted after %d of %d files: %w", r.FilesTransferred+r.FilesSkipped, r.Files, ctx.Err())
	}
	if len(r.Failed) == 0 {
		return &r, nil
	}
	names := make([]string, 0, len(r.Failed))
	for _, f := range r.Failed {
		names = append(names, f.Path)
	}
	return &r, fmt.Errorf("%w: %d of %d files: %s", ErrIncomplete, len(r.Failed), r.Files, strings.Join(names, ", "))
}

// PrintSummary writes the report's one-line summary, and a line per failed file.
func PrintSummary(w io.Writer, r *Report) {
	verb, moved := "pushed", "sent"
	if r.Operation == "pull" {
		verb, moved = "pulled", "received"
	}
	rate := float64(r.BytesTransferred) / max(r.Elapsed.Seconds(), 0.001)
	fmt.Fprintf(w, "%s %s: %d files (%s) in %s: %s %d (%s, %s/s), %d already in place",
		verb, r.Package, r.Files, importer.HumanBytes(r.Bytes), r.Elapsed.Round(time.Millisecond),
		moved, r.FilesTransferred, importer.HumanBytes(r.BytesTransferred), importer.HumanBytes(int64(rate)), r.FilesSkipped)
	if r.FilesResumed > 0 {
		fmt.Fprintf(w, ", %d resumed", r.FilesResumed)
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, ", %d FAILED", len(r.Failed))
	}
	fmt.Fprintln(w)
	for _, f := range r.Failed {
		fmt.Fprintf(w, "FAILED %s: %s\n", f.Path, f.Error)
	}
}
