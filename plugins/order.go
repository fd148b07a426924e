package plugins

import (
	"context"
	"errors"
	"sync"
)

// WriteOverlapper is implemented by Storages that can take a Write before
// the previous one returned and still apply them in the order they were
// started. The host then keeps up to WriteOverlap() Writes in flight, so
// that the transport of one batch overlaps the commit of the previous one.
// The gRPC client of a storage plugin implements it (the plugin side
// orders the calls, see writeGate); a Storage that does not is called one
// Write at a time.
type WriteOverlapper interface {
	// StartWrite begins a Write of b and returns at once; wait returns
	// its outcome, as Write would. Writes are applied in the order of the
	// StartWrite calls. ctx must stay live until wait returns.
	StartWrite(ctx context.Context, b *WriteBatch) (wait func() ([]AppendResult, error))
	// WriteOverlap is how many Writes may be in flight at once.
	WriteOverlap() int
}

// writeOverlap is how many Writes the host keeps in flight to a plugin.
const writeOverlap = 2

// errWriteOutOfOrder refuses a Write whose turn has passed.
var errWriteOutOfOrder = errors.New("write arrived after its turn; not applied")

// writeGate is the plugin side of overlapping Writes: it admits Writes in
// increasing seq order (1, 2, 3, ...) whatever order they arrive in.
//
// A Write waits while a Write before it runs. If its predecessor never
// arrives (the host gave up on it before sending), the waiter gives up
// when its own context ends and the turn moves past it; a latecomer whose
// turn has passed is refused, nothing written. The host sends seqs without
// gaps over one connection, so this only happens when a call was lost.
// A waiter that gives up while a Write before it runs (its deadline came
// first) is remembered, and its turn skipped when it comes, so that it
// does not hold up the Writes after it.
// The zero writeGate is ready for use.
type writeGate struct {
	mu      sync.Mutex
	next    uint64 // the seq whose turn it is (0 until first use: then 1)
	running bool
	changed chan struct{} // closed and replaced whenever next or running changes
	// gaveUp holds the seqs past next whose Writes gave up waiting.
	gaveUp map[uint64]bool
}

// enter waits for seq's turn. It returns a function to call when the
// Write is done, or an error (nothing may be written).
func (g *writeGate) enter(ctx context.Context, seq uint64) (func(), error) {
	g.mu.Lock()
	if g.changed == nil {
		g.next, g.changed = 1, make(chan struct{})
	}
	for {
		switch {
		case seq < g.next:
			g.mu.Unlock()
			return nil, errWriteOutOfOrder
		case seq == g.next && !g.running:
			g.running = true
			g.mu.Unlock()
			return func() { g.leave(seq) }, nil
		}
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			g.mu.Lock()
			switch {
			case seq < g.next:
				// Its turn has passed meanwhile.
			case !g.running:
				// The predecessors never came (or it is its turn): skip
				// them and this one, so that the writes after it are not
				// held up.
				g.advanceLocked(seq + 1)
			default:
				// A predecessor runs: skip this one when its turn comes.
				if g.gaveUp == nil {
					g.gaveUp = make(map[uint64]bool)
				}
				g.gaveUp[seq] = true
			}
			g.mu.Unlock()
			return nil, ctx.Err()
		}
		g.mu.Lock()
	}
}

func (g *writeGate) leave(seq uint64) {
	g.mu.Lock()
	g.running = false
	g.advanceLocked(seq + 1)
	g.mu.Unlock()
}

// advanceLocked gives the turn to next, or past it to the first seq whose
// Write did not give up.
func (g *writeGate) advanceLocked(next uint64) {
	for g.gaveUp[next] {
		delete(g.gaveUp, next)
		next++
	}
	for seq := range g.gaveUp {
		if seq < next {
			delete(g.gaveUp, seq)
		}
	}
	g.next = next
	g.signalLocked()
}

func (g *writeGate) signalLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}
