package simulate

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// isTerminal reports whether w is a character device, where progress can
// overwrite itself in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress prints a status line every second until stopped, and a final
// one when stopped. On a terminal the line overwrites itself; elsewhere
// each is a line of its own. line is only ever called from one goroutine;
// final is true for the last call.
type progress struct {
	w    io.Writer
	tty  bool
	line func(elapsed time.Duration, final bool) string

	start    time.Time
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func startProgress(w io.Writer, tty bool, line func(elapsed time.Duration, final bool) string) *progress {
	p := &progress{w: w, tty: tty, line: line, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.print(false)
		case <-p.stop:
			p.print(true)
			return
		}
	}
}

func (p *progress) print(final bool) {
	s := p.line(time.Since(p.start), final)
	switch {
	case !p.tty:
		fmt.Fprintln(p.w, s)
	case final:
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", s)
	default:
		fmt.Fprintf(p.w, "\r%s\x1b[K", s)
	}
}

// Stop prints the final line and returns once nothing more will be
// printed.
func (p *progress) Stop() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
}

// rateMeter turns a running total into a per-second rate since its last
// reading, or over the whole time for the final reading.
type rateMeter struct {
	last  int64
	lastT time.Duration
}

func (m *rateMeter) rate(total int64, elapsed time.Duration, final bool) float64 {
	if final {
		m.last, m.lastT = 0, 0
	}
	dt := elapsed - m.lastT
	r := 0.0
	if dt > 0 {
		r = float64(total-m.last) / dt.Seconds()
	}
	m.last, m.lastT = total, elapsed
	return r
}

// roundDur rounds d for display.
func roundDur(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}
