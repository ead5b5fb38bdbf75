package collect

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// coalescer applies a collector's coalescing and per-window limit: within
// a window the first observation of a key is recorded and its repeats are
// counted; new keys past the limit are counted; at the end of the window
// the counts are recorded as policy.denial notes. Windows are consecutive:
// the first starts at the first observation, the next when a check finds
// the previous one over.
type coalescer[K interface {
	comparable
	String() string
}] struct {
	window time.Duration
	limit  int
	text   coalesceText

	start    time.Time
	recorded map[K]int // keys recorded this window -> repeats since
	order    []K
	over     int // new keys past the limit
}

// coalesceText names what a coalescer's notes are about.
type coalesceText struct {
	eventType           string // the event type held back
	coalesce, rateLimit string // the policies named in the notes
	repeatsOfThis       string // "repeated connections of this flow"
	repeatsOfOthers     string // "repeated connections of %d other flows already recorded"
	newOnes             string // "new connections"
}

func newCoalescer[K interface {
	comparable
	String() string
}](window time.Duration, limit int, text coalesceText) coalescer[K] {
	if window <= 0 {
		window = DefaultWindow
	}
	return coalescer[K]{window: window, limit: limit, text: text, recorded: map[K]int{}}
}

// begin starts the window at now if none is open.
func (c *coalescer[K]) begin(now time.Time) {
	if c.start.IsZero() {
		c.start = now
	}
}

// admit reports whether an observation of k is to be recorded, and counts
// it if not.
func (c *coalescer[K]) admit(now time.Time, k K) bool {
	c.begin(now)
	if n, ok := c.recorded[k]; ok {
		c.recorded[k] = n + 1
		return false
	}
	if len(c.order) >= c.limit {
		c.over++
		return false
	}
	c.recorded[k] = 0
	c.order = append(c.order, k)
	return true
}

// due reports whether the window is over at now (or final is set).
func (c *coalescer[K]) due(now time.Time, final bool) bool {
	return !c.start.IsZero() && (final || now.Sub(c.start) >= c.window)
}

// notes records the window's notes (when is its span) and starts the next
// window.
func (c *coalescer[K]) notes(when string, rec Recorder) {
	t := c.text
	action := "record " + t.eventType
	var rep []K
	for _, k := range c.order {
		if c.recorded[k] > 0 {
			rep = append(rep, k)
		}
	}
	slices.SortStableFunc(rep, func(a, b K) int { return cmp.Compare(c.recorded[b], c.recorded[a]) })
	for i, k := range rep {
		if i == maxCoalesceNotes {
			n := 0
			for _, k := range rep[i:] {
				n += c.recorded[k]
			}
			rec.Record(events.TypePolicyDenial, events.SeverityInformational, events.PolicyDenial{
				Policy: t.coalesce, Action: action,
				Reason: fmt.Sprintf("%d "+t.repeatsOfOthers+", %s, not recorded one by one", n, len(rep)-i, when)})
			break
		}
		rec.Record(events.TypePolicyDenial, events.SeverityInformational, events.PolicyDenial{
			Policy: t.coalesce, Action: action, Target: clip(k.String(), 2048),
			Reason: fmt.Sprintf("%d %s, %s, not recorded one by one; the first was recorded", c.recorded[k], t.repeatsOfThis, when)})
	}
	if c.over > 0 {
		rec.Record(events.TypePolicyDenial, events.SeverityLow, events.PolicyDenial{
			Policy: t.rateLimit, Action: action,
			Reason: fmt.Sprintf("%d %s %s not recorded: over the limit of %d %s events per window", c.over, t.newOnes, when, c.limit, t.eventType)})
	}
	c.start = time.Time{}
	clear(c.recorded)
	c.order = c.order[:0]
	c.over = 0
}
