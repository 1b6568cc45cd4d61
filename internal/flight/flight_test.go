package flight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blockingCall returns fn that counts its runs, waits for release or for
// its context, and reports whether its context was cancelled.
func blockingCall(runs *atomic.Int32, release <-chan struct{}, cancelled chan<- struct{}) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		runs.Add(1)
		select {
		case <-release:
			return "answer", nil
		case <-ctx.Done():
			if cancelled != nil {
				close(cancelled)
			}
			return "", ctx.Err()
		}
	}
}

func TestConcurrentCallersShareOneCall(t *testing.T) {
	var g Group[string]
	var runs atomic.Int32
	release := make(chan struct{})
	fn := blockingCall(&runs, release, nil)
	const n = 50
	var wg sync.WaitGroup
	results := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := g.Do(context.Background(), "k", fn)
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	for g.Running() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let every caller join
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "answer" {
			t.Fatalf("got %q", v)
		}
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("%d calls for %d concurrent callers, want 1", got, n)
	}
}

func TestLastCallerGoneCancelsTheCall(t *testing.T) {
	var g Group[string]
	var runs atomic.Int32
	cancelled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.Do(ctx, "k", blockingCall(&runs, nil, cancelled))
		done <- err
	}()
	for g.Running() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("departed caller got %v, want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the call went on after its only caller left")
	}
	for deadline := time.Now().Add(5 * time.Second); g.Running() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled call still counts as running")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOneCallerGoneDoesNotFailTheOthers(t *testing.T) {
	var g Group[string]
	var runs atomic.Int32
	release := make(chan struct{})
	fn := blockingCall(&runs, release, nil)
	leaving, cancel := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() { _, err := g.Do(leaving, "k", fn); left <- err }()
	for g.Running() == 0 {
		time.Sleep(time.Millisecond)
	}
	stayed := make(chan string, 1)
	go func() {
		v, err := g.Do(context.Background(), "k", fn)
		if err != nil {
			t.Error(err)
		}
		stayed <- v
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Fatalf("departed caller got %v", err)
	}
	close(release)
	if v := <-stayed; v != "answer" {
		t.Fatalf("remaining caller got %q, want the answer", v)
	}
	if runs.Load() != 1 {
		t.Fatalf("%d calls, want 1", runs.Load())
	}
}

func TestMaxInFlight(t *testing.T) {
	g := Group[string]{MaxInFlight: 2}
	var runs atomic.Int32
	release := make(chan struct{})
	fn := blockingCall(&runs, release, nil)
	var wg sync.WaitGroup
	for _, key := range []string{"a", "b"} {
		wg.Add(1)
		go func() { defer wg.Done(); g.Do(context.Background(), key, fn) }()
	}
	for g.Running() < 2 {
		time.Sleep(time.Millisecond)
	}
	cases := []struct {
		key  string
		want error
	}{
		{"c", ErrLimit}, // a third distinct key: refused at once
		{"a", nil},      // joining a running call needs no slot
	}
	for _, c := range cases {
		errc := make(chan error, 1)
		go func() { _, err := g.Do(context.Background(), c.key, fn); errc <- err }()
		if c.want != nil {
			select {
			case err := <-errc:
				if !errors.Is(err, c.want) {
					t.Errorf("key %q: %v, want %v", c.key, err, c.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("key %q waited for a slot instead of failing at once", c.key)
			}
			continue
		}
		time.Sleep(20 * time.Millisecond)
		close(release)
		if err := <-errc; err != nil {
			t.Errorf("key %q: %v", c.key, err)
		}
	}
	wg.Wait()
	if _, err := g.Do(context.Background(), "c", func(context.Context) (string, error) { return "x", nil }); err != nil {
		t.Fatalf("after the calls ended, a new one was refused: %v", err)
	}
}

func TestDoneContextNeverStartsACall(t *testing.T) {
	var g Group[string]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := g.Do(ctx, "k", func(context.Context) (string, error) { ran = true; return "", nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("err %v, ran %v: a departed caller started a call", err, ran)
	}
}
