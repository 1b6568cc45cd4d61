package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestAnswerCache(t *testing.T) {
	errDown := errors.New("down")
	tests := []struct {
		name      string
		ttl       time.Duration
		answer    []string
		err       error
		wantLoads int // for three gets in a row
	}{
		{"answer cached", time.Minute, []string{"a"}, nil, 1},
		{"no answer cached", time.Minute, nil, nil, 1},
		{"error never cached", time.Minute, nil, errDown, 3},
		{"ttl zero caches nothing", 0, []string{"a"}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAnswerCache[[]string](tt.ttl, 100, nil)
			defer c.close()
			var loads atomic.Int64
			for range 3 {
				got, err := c.get(context.Background(), "alice", func(context.Context) ([]string, error) {
					loads.Add(1)
					return tt.answer, tt.err
				})
				if !errors.Is(err, tt.err) || fmt.Sprint(got) != fmt.Sprint(tt.answer) {
					t.Fatalf("get = %v, %v; want %v, %v", got, err, tt.answer, tt.err)
				}
			}
			if n := int(loads.Load()); n != tt.wantLoads {
				t.Fatalf("%d loads, want %d", n, tt.wantLoads)
			}
		})
	}
}

// TestAnswerCacheBounded: a flood of distinct users cannot grow the cache
// past its size.
func TestAnswerCacheBounded(t *testing.T) {
	c := newAnswerCache[[]string](time.Minute, 50, nil)
	defer c.close()
	for i := range 5000 {
		_, _ = c.get(context.Background(), fmt.Sprint("user", i), func(context.Context) ([]string, error) {
			return []string{"g"}, nil
		})
	}
	c.entries.CleanUp()
	if n := c.entries.EstimatedSize(); n > 50 {
		t.Fatalf("cache holds %d answers, bound is 50", n)
	}
}

// TestAnswerCacheAbandonedLoad: the load keeps the first caller's values;
// when its only caller leaves, the load is cancelled (a directory is not
// kept busy for nobody) and nothing is cached, and the caller's own
// cancellation is what it gets back.
func TestAnswerCacheAbandonedLoad(t *testing.T) {
	type key struct{}
	c := newAnswerCache[[]string](time.Minute, 10, nil)
	defer c.close()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	started := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		<-started
		cancel()
	}()
	_, err := c.get(ctx, "alice", func(lctx context.Context) ([]string, error) {
		close(started)
		if lctx.Value(key{}) != "v" {
			loadErr <- fmt.Errorf("load context lost the caller's value")
		}
		select {
		case <-lctx.Done():
			loadErr <- nil
			return nil, lctx.Err()
		case <-time.After(5 * time.Second):
			loadErr <- errors.New("the load went on after its only caller left")
			return []string{"a"}, nil
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller got %v", err)
	}
	if err := <-loadErr; err != nil {
		t.Fatal(err)
	}
	got, err := c.get(context.Background(), "alice", func(context.Context) ([]string, error) {
		return []string{"fresh"}, nil
	})
	if err != nil || len(got) != 1 || got[0] != "fresh" {
		t.Fatalf("get after the abandoned load = %v, %v; want a fresh load", got, err)
	}
}

// TestAnswerCacheObserver: the metrics hook sees one miss, then hits.
func TestAnswerCacheObserver(t *testing.T) {
	var hits, misses atomic.Int64
	c := newAnswerCache[[]string](time.Minute, 10, func(hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	})
	defer c.close()
	for range 4 {
		if _, err := c.get(context.Background(), "alice", func(context.Context) ([]string, error) { return []string{"a"}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if hits.Load() != 3 || misses.Load() != 1 {
		t.Fatalf("hits %d, misses %d; want 3 and 1", hits.Load(), misses.Load())
	}
}
