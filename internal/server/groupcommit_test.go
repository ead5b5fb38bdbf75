package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// TestGroupCommit checks that concurrent writes are committed together,
// each exactly once, and that every writer waits for its own commit.
func TestGroupCommit(t *testing.T) {
	var mu sync.Mutex
	var committed []int
	groups := 0
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	g := newGroupCommit("numbers", 64, slog.Default(), func(_ context.Context, vs []int) error {
		if first {
			first = false
			close(entered)
			<-release // hold the first commit so that the others queue up
		}
		mu.Lock()
		defer mu.Unlock()
		committed = append(committed, vs...)
		groups++
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.run(ctx) }()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.write(context.Background(), 0); err != nil {
			t.Error(err)
		}
	})
	<-entered // the first write is being committed
	for i := 1; i <= 100; i++ {
		wg.Go(func() {
			if err := g.write(context.Background(), i); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Contains(committed, i) {
				t.Errorf("write %d returned before it was committed", i)
			}
		})
	}
	for len(g.in) != 100 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	cancel()
	<-done
	slices.Sort(committed)
	if len(committed) != 101 || len(slices.Compact(slices.Clone(committed))) != 101 || committed[0] != 0 || committed[100] != 100 {
		t.Fatalf("committed %v, want 0..100 once each", committed)
	}
	if groups > 4 { // 1 held + 100 queued in groups of at most 64
		t.Errorf("%d commits for 101 writes that queued together, want at most 4", groups)
	}
}

// TestGroupCommitIsolatesFailure checks that with one set, a write that
// fails does not fail the others committed with it.
func TestGroupCommitIsolatesFailure(t *testing.T) {
	bad := errors.New("device deleted")
	var mu sync.Mutex
	var committed []int
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	g := newGroupCommit("numbers", 64, slog.Default(), func(_ context.Context, vs []int) error {
		if first {
			first = false
			close(entered)
			<-release
		}
		if slices.Contains(vs, 13) {
			return bad // all or none, like a transaction
		}
		mu.Lock()
		defer mu.Unlock()
		committed = append(committed, vs...)
		return nil
	})
	g.one = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.run(ctx)

	errs := make([]error, 21)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = g.write(context.Background(), 0) })
	<-entered
	for i := 1; i <= 20; i++ {
		wg.Go(func() { errs[i] = g.write(context.Background(), i) })
	}
	for len(g.in) != 20 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if i == 13 {
			if !errors.Is(err, bad) {
				t.Errorf("write 13: err %v, want %v", err, bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d failed with the bad one: %v", i, err)
		}
	}
	slices.Sort(committed)
	if len(committed) != 20 || slices.Contains(committed, 13) {
		t.Errorf("committed %v, want 0..20 without 13", committed)
	}
}
