package ioc

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Set holds the current indicators of each source and publishes a Matcher
// over all of them, rebuilt on every change. It is safe for concurrent use:
// readers call Matcher, which never blocks, while changes are serialized.
type Set struct {
	now     func() time.Time
	mu      sync.Mutex // serializes changes
	sources map[string][]Indicator
	cur     atomic.Pointer[Matcher]
}

// NewSet returns an empty set whose matchers use the clock now (nil means
// time.Now) for expiry.
func NewSet(now func() time.Time) *Set {
	s := &Set{now: now, sources: map[string][]Indicator{}}
	m, _ := Build(nil, now)
	s.cur.Store(m)
	return s
}

// Matcher returns the current snapshot; it is never nil.
func (s *Set) Matcher() *Matcher { return s.cur.Load() }

// Replace sets the indicators of source, replacing any it had, rebuilds the
// matcher and returns it. Each indicator's Source is set to source. On error
// (an invalid indicator) the set is unchanged.
func (s *Set) Replace(source string, inds []Indicator) (*Matcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := make([]Indicator, len(inds))
	for i, in := range inds {
		in.Source = source
		cp[i] = in
	}
	old, had := s.sources[source]
	s.sources[source] = cp
	m, err := s.rebuild()
	if err != nil {
		if had {
			s.sources[source] = old
		} else {
			delete(s.sources, source)
		}
		return nil, fmt.Errorf("ioc: replace source %q: %w", source, err)
	}
	return m, nil
}

// Remove drops the indicators of source and returns the rebuilt matcher.
func (s *Set) Remove(source string) *Matcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sources, source)
	m, err := s.rebuild()
	if err != nil { // cannot happen: every remaining source was built before
		return s.cur.Load()
	}
	return m
}

// Sources returns the names of the sources in the set, sorted.
func (s *Set) Sources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.sources))
	for k := range s.sources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Set) rebuild() (*Matcher, error) {
	n := 0
	for _, v := range s.sources {
		n += len(v)
	}
	all := make([]Indicator, 0, n)
	names := make([]string, 0, len(s.sources))
	for k := range s.sources {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		all = append(all, s.sources[k]...)
	}
	m, err := Build(all, s.now)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return m, nil
}
