package server

import (
	"context"
)

// groupCommit commits writes in groups: a request waits until its write
// is durable, and all writes arriving while a transaction is being
// committed go together in the next one, so a busy server pays one commit
// (and one fsync) per group instead of one per request. Check-ins and
// attestation results go through one each.
type groupCommit[T any] struct {
	// commit writes a group in one transaction. It is called from run's
	// goroutine only.
	commit func(ctx context.Context, group []T) error
	// one, when set, is used after a group failed: each write of the
	// group is retried alone, so that one bad write (a device deleted
	// meanwhile) does not fail the others.
	one bool
	log interface{ Error(string, ...any) }
	// what names the writes in log messages.
	what string
	in   chan *pendingWrite[T]
	max  int
}

type pendingWrite[T any] struct {
	v    T
	done chan error
}

func newGroupCommit[T any](what string, max int, log interface{ Error(string, ...any) }, commit func(context.Context, []T) error) *groupCommit[T] {
	return &groupCommit[T]{commit: commit, log: log, what: what, max: max, in: make(chan *pendingWrite[T], 4*max)}
}

// write queues v and waits until it is committed (or failed).
func (g *groupCommit[T]) write(ctx context.Context, v T) error {
	p := &pendingWrite[T]{v: v, done: make(chan error, 1)}
	select {
	case g.in <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run commits groups until ctx ends, then commits what is still queued.
func (g *groupCommit[T]) run(ctx context.Context) {
	batch := make([]*pendingWrite[T], 0, g.max)
	for {
		select {
		case p := <-g.in:
			batch = append(batch[:0], p)
		case <-ctx.Done():
			for {
				select {
				case p := <-g.in:
					g.flush([]*pendingWrite[T]{p})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < g.max {
			select {
			case p := <-g.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		g.flush(batch)
	}
}

func (g *groupCommit[T]) flush(batch []*pendingWrite[T]) {
	vs := make([]T, len(batch))
	for i, p := range batch {
		vs[i] = p.v
	}
	err := g.commit(context.Background(), vs)
	if err != nil && g.one && len(batch) > 1 {
		for _, p := range batch {
			err := g.commit(context.Background(), []T{p.v})
			if err != nil {
				g.log.Error("recording "+g.what, "n", 1, "err", err)
			}
			p.done <- err
		}
		return
	}
	if err != nil {
		g.log.Error("recording "+g.what, "n", len(vs), "err", err)
	}
	for _, p := range batch {
		p.done <- err
	}
}
