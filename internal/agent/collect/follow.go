package collect

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Defaults of Follower.
const (
	DefaultPoll    = time.Second
	DefaultMaxLine = 16 << 10
)

// Follower reads the lines appended to a file, like tail -F: it polls the
// file, and follows it across rotation. When the path names a different
// file (rename and create, as logrotate does by default) it reads the old
// file to its end, then the new one from its start; when the file shrinks
// below what was read (copytruncate) it starts again from the top. Lines
// written to a truncated file before the next poll, beyond the old size,
// cannot be told from old ones and are missed; a rotation that happens
// twice within one poll skips the file in between.
type Follower struct {
	// Path of the file.
	Path string
	// Poll is the polling interval; zero means DefaultPoll.
	Poll time.Duration
	// FromStart reads the lines already in the file at start; otherwise
	// only lines appended later are read.
	FromStart bool
	// MaxLine caps a line; zero means DefaultMaxLine. A longer line is
	// cut to MaxLine bytes and the rest skipped.
	MaxLine int

	// passed, if set, is called after each pass over the file (tests).
	passed func()
}

// Run calls line for each complete line (without its newline), from the
// calling goroutine, until ctx ends; it returns nil then. A path that does
// not exist yet is waited for. A line still without its newline is
// delivered when the file is rotated away.
func (f *Follower) Run(ctx context.Context, line func(string)) error {
	poll := f.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	r := &fileReader{max: f.MaxLine, emit: line}
	if r.max <= 0 {
		r.max = DefaultMaxLine
	}
	defer r.close()
	fromStart := f.FromStart
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if r.fh == nil {
			// First open (at the end unless FromStart), or the path
			// came back after a rotation (from its start).
			r.open(f.Path, !fromStart)
			fromStart = true
		}
		if r.fh != nil {
			r.drain()
			fi, err := os.Stat(f.Path)
			switch {
			case err == nil && !os.SameFile(fi, r.fi):
				r.drain() // what was written to the old file before the switch
				r.flush()
				r.close()
				if err := r.open(f.Path, false); err == nil {
					continue
				}
			case err == nil && fi.Size() < r.off:
				r.rewind()
				continue
			case errors.Is(err, os.ErrNotExist):
				// Renamed, its successor not yet created: keep reading
				// the old file until it is.
			}
		}
		if f.passed != nil {
			f.passed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// fileReader splits one open file into lines.
type fileReader struct {
	fh      *os.File
	fi      os.FileInfo
	off     int64  // bytes consumed
	pending []byte // a line without its newline yet
	skip    bool   // the rest of an overlong line is being skipped
	max     int
	emit    func(string)
	buf     [32 << 10]byte
}

func (r *fileReader) open(path string, atEnd bool) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return err
	}
	r.fh, r.fi, r.off = fh, fi, 0
	if atEnd {
		if r.off, err = fh.Seek(0, io.SeekEnd); err != nil {
			fh.Close()
			r.fh = nil
			return err
		}
	}
	return nil
}

func (r *fileReader) close() {
	if r.fh != nil {
		r.fh.Close()
		r.fh = nil
	}
	r.pending, r.skip = r.pending[:0], false
}

func (r *fileReader) rewind() {
	if _, err := r.fh.Seek(0, io.SeekStart); err != nil {
		r.close()
		return
	}
	r.off = 0
	r.pending, r.skip = r.pending[:0], false
}

// drain reads the file to its current end.
func (r *fileReader) drain() {
	for {
		n, err := r.fh.Read(r.buf[:])
		r.off += int64(n)
		b := r.buf[:n]
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			part := b
			if i >= 0 {
				part = b[:i]
			}
			if !r.skip {
				if room := r.max - len(r.pending); len(part) > room {
					part, r.skip = part[:room], true
				}
				r.pending = append(r.pending, part...)
			}
			if i < 0 {
				break
			}
			r.flush()
			b = b[i+1:]
		}
		if err != nil || n == 0 {
			return
		}
	}
}

// flush delivers the pending line, if any.
func (r *fileReader) flush() {
	if len(r.pending) > 0 || r.skip {
		r.emit(string(r.pending))
	}
	r.pending, r.skip = r.pending[:0], false
}
