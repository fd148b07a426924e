package plugins

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestWriteGateOrders admits Writes in seq order whatever order they
// arrive in.
func TestWriteGateOrders(t *testing.T) {
	var g writeGate
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for _, seq := range []uint64{3, 1, 4, 2, 5} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := g.enter(context.Background(), seq)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			done()
		}()
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	for i, seq := range order {
		if seq != uint64(i+1) {
			t.Fatalf("admitted %v, want 1..5 in order", order)
		}
	}
}

// TestWriteGateLostPredecessor: a Write whose predecessor never arrives
// gives up at its deadline, the writes after it proceed, and the
// latecomer is refused.
func TestWriteGateLostPredecessor(t *testing.T) {
	var g writeGate
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := g.enter(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enter(2) without 1 = %v, want the deadline", err)
	}
	done, err := g.enter(context.Background(), 3)
	if err != nil {
		t.Fatalf("enter(3) after 2 gave up = %v", err)
	}
	done()
	if _, err := g.enter(context.Background(), 1); !errors.Is(err, errWriteOutOfOrder) {
		t.Fatalf("late enter(1) = %v, want errWriteOutOfOrder", err)
	}
}

// TestWriteGateGaveUpBehindRunning: a Write that gives up while the one
// before it runs does not hold up the Writes after it, and its turn is
// skipped (it would be refused if it came again).
func TestWriteGateGaveUpBehindRunning(t *testing.T) {
	var g writeGate
	done1, err := g.enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("enter(2) behind a running 1 with its context done = %v, want Canceled", err)
	}
	admitted := make(chan error, 1)
	go func() {
		done3, err := g.enter(context.Background(), 3)
		if err == nil {
			done3()
		}
		admitted <- err
	}()
	done1()
	select {
	case err := <-admitted:
		if err != nil {
			t.Fatalf("enter(3) after 1 finished and 2 gave up = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enter(3) still waits for 2, which gave up")
	}
	if _, err := g.enter(context.Background(), 2); !errors.Is(err, errWriteOutOfOrder) {
		t.Fatalf("enter(2) again = %v, want errWriteOutOfOrder", err)
	}
	if len(g.gaveUp) != 0 {
		t.Errorf("gaveUp = %v after its turn passed", g.gaveUp)
	}
}
