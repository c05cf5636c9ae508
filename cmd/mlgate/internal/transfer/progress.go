package transfer

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mlgate/mlgate/gateway/importer"
)

// Progress hears how a transfer advances. Its methods are called from several goroutines at once.
type Progress interface {
	// Start announces the files and bytes the transfer has to check or move.
	Start(files int, bytes int64)
	// Add counts n more bytes done: moved, or found already in place.
	Add(n int64)
	// FileDone counts a file finished; err is its failure, nil for a success.
	FileDone(path string, err error)
	// Finish ends the display.
	Finish()
}

// NoProgress shows nothing.
type NoProgress struct{}

func (NoProgress) Start(int, int64)       {}
func (NoProgress) Add(int64)              {}
func (NoProgress) FileDone(string, error) {}
func (NoProgress) Finish()                {}

// plainInterval is how often a progress line is printed when there is no terminal (a CI log).
const plainInterval = 5 * time.Second

// NewProgress shows a transfer on w: a bar with bytes, rate and ETA when w is a terminal, otherwise a
// plain line every few seconds and one per failed file. verb ("pushing", "pulling") starts each line.
func NewProgress(w io.Writer, verb string) Progress {
	p := &display{w: w, verb: verb}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(verb), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
	}
	return p
}

type display struct {
	mu               sync.Mutex
	w                io.Writer
	verb             string
	bar              *progressbar.ProgressBar // nil when w is not a terminal
	files, doneFiles int
	bytes, doneBytes int64
	start, lastLine  time.Time
}

func (p *display) Start(files int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files, p.bytes, p.start, p.lastLine = files, bytes, time.Now(), time.Now()
	if p.bar != nil {
		p.bar.ChangeMax64(max(bytes, 1))
		p.bar.Describe(fmt.Sprintf("%s 0/%d files", p.verb, files))
		return
	}
	fmt.Fprintf(p.w, "%s %d files, %s\n", p.verb, files, importer.HumanBytes(bytes))
}

func (p *display) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneBytes += n
	if p.bar != nil {
		_ = p.bar.Add64(n)
		return
	}
	p.lineLocked(false)
}

func (p *display) FileDone(path string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneFiles++
	if err != nil {
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		fmt.Fprintf(p.w, "FAILED %s: %v\n", path, err)
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s %d/%d files", p.verb, p.doneFiles, p.files))
		return
	}
	p.lineLocked(false)
}

// lineLocked prints a plain progress line, at most every plainInterval unless force is set.
func (p *display) lineLocked(force bool) {
	if !force && time.Since(p.lastLine) < plainInterval {
		return
	}
	p.lastLine = time.Now()
	elapsed := time.Since(p.start)
	rate := float64(p.doneBytes) / max(elapsed.Seconds(), 0.001)
	eta := "-"
	if rate > 0 && p.bytes > p.doneBytes {
		eta = time.Duration(float64(p.bytes-p.doneBytes) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d files, %s/%s, %s/s, ETA %s\n", p.verb, p.doneFiles, p.files,
		importer.HumanBytes(p.doneBytes), importer.HumanBytes(p.bytes), importer.HumanBytes(int64(rate)), eta)
}

func (p *display) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
