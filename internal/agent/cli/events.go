package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/localapi"
	"github.com/bulwark-iot/bulwark/internal/agent/state"
)

// events prints the device's security events from the running daemon's
// journal (local API), newest --limit first, then follows new ones.
func (c *cmd) events(args []string) int {
	fs, dir := c.flags("[--follow] [--json] [--limit N] [--state DIR]")
	follow := fs.Bool("follow", false, "keep printing events as they are recorded, until interrupted")
	asJSON := fs.Bool("json", false, "print one event envelope (docs/events.md) per line")
	limit := fs.Int("limit", 50, "start with the newest `N` events")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	if *limit < 1 || *limit > localapi.MaxEventsPage {
		return c.errorf(exitUsage, "--limit must be from 1 to %d", localapi.MaxEventsPage)
	}
	cl := localapi.NewClient(filepath.Join(*dir, state.SocketFile))
	get := func(after int64, n int) (*localapi.EventsPage, error) {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		return cl.Events(ctx, after, n)
	}
	page, err := get(-1, *limit)
	if err != nil {
		return c.errorf(exitFail, "%v", err)
	}
	printEventLines(c.stdout, page.Events, *asJSON)
	if !*follow {
		if !*asJSON {
			printJournalState(c.stdout, page)
		}
		return exitOK
	}
	next := page.Next
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return exitOK
		case <-t.C:
		}
		page, err := get(int64(next), localapi.MaxEventsPage)
		if err != nil {
			if c.ctx.Err() != nil {
				return exitOK
			}
			return c.errorf(exitFail, "%v", err)
		}
		printEventLines(c.stdout, page.Events, *asJSON)
		next = page.Next
	}
}

func printEventLines(w io.Writer, evs []json.RawMessage, asJSON bool) {
	for _, raw := range evs {
		if asJSON {
			// The local API indents its answers: one event per line.
			var b bytes.Buffer
			if json.Compact(&b, raw) == nil {
				b.WriteByte('\n')
				w.Write(b.Bytes())
			}
			continue
		}
		var e struct {
			Seq        uint64          `json:"seq"`
			Type       string          `json:"type"`
			Severity   string          `json:"severity"`
			DeviceTime time.Time       `json:"device_time"`
			Details    json.RawMessage `json:"details"`
		}
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		fmt.Fprintf(w, "%s  %6d  %-13s  %-20s  %s\n", e.DeviceTime.Local().Format(time.RFC3339), e.Seq, e.Severity, e.Type, e.Details)
	}
}

func printJournalState(w io.Writer, p *localapi.EventsPage) {
	if p.LastSeq == 0 {
		fmt.Fprintln(w, "(the journal is empty)")
		return
	}
	fmt.Fprintf(w, "journal: seq %d to %d held locally, acknowledged by the server up to %d", p.FirstSeq, p.LastSeq, p.AckedSeq)
	if f := p.Forwarding; f != nil && f.LastError != "" {
		fmt.Fprintf(w, "; forwarding failing (%d in a row): %s", f.Failures, f.LastError)
	}
	fmt.Fprintln(w)
}
