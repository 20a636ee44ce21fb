package cache_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ushka-go/ushka/cache"
)

func TestReview13GetOrSetManyStorm(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		var loads [40]atomic.Int32
		loadMany := func(_ context.Context, keys []string) (map[string]int, error) {
			out := map[string]int{"extra-not-asked": -1}
			for _, k := range keys {
				var i int
				fmt.Sscanf(k, "s%d", &i)
				loads[i].Add(1)
				if i%7 == 3 {
					continue // left out
				}
				out[k] = i
			}
			time.Sleep(time.Millisecond)
			return out, nil
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 1))
				for range 20 {
					var keys []string
					for range 1 + r.IntN(10) {
						keys = append(keys, fmt.Sprintf("s%d", r.IntN(40)))
					}
					if r.IntN(4) == 0 {
						k := keys[0]
						v, err := cache.GetOrSet(context.Background(), c, k, time.Minute, func(ctx context.Context) (int, error) {
							m, err := loadMany(ctx, []string{k})
							if _, ok := m[k]; !ok && err == nil {
								return 0, cache.ErrNotLoaded
							}
							return m[k], err
						})
						var i int
						fmt.Sscanf(k, "s%d", &i)
						if err != nil && !errors.Is(err, cache.ErrNotLoaded) || err == nil && v != i {
							t.Errorf("GetOrSet(%s) = %d, %v", k, v, err)
						}
						continue
					}
					m, err := cache.GetOrSetMany(context.Background(), c, keys, time.Minute, loadMany)
					if err != nil {
						t.Errorf("GetOrSetMany: %v", err)
					}
					for _, k := range keys {
						var i int
						fmt.Sscanf(k, "s%d", &i)
						v, ok := m[k]
						if ok != (i%7 != 3) || ok && v != i {
							t.Errorf("GetOrSetMany[%s] = %d, %v", k, v, ok)
						}
					}
					if _, ok := m["extra-not-asked"]; ok {
						t.Errorf("a key not asked for is in the map")
					}
				}
			})
		}
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("deadlock: GetOrSetMany storm did not finish in 20s")
		}
		for i := range loads {
			if i%7 != 3 && loads[i].Load() > 1 {
				t.Errorf("key s%d loaded %d times", i, loads[i].Load())
			}
		}
	})
}

func TestReview13GetOrSetManyOddLoads(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		ctx := t.Context()
		m, err := cache.GetOrSetMany(ctx, c, nil, time.Minute, func(context.Context, []string) (map[string]int, error) {
			t.Error("loadMany called for no keys")
			return nil, nil
		})
		if err != nil || len(m) != 0 {
			t.Errorf("no keys: %v, %v", m, err)
		}
		m, err = cache.GetOrSetMany(ctx, c, []string{"n1", "n2", "n1"}, time.Minute, func(context.Context, []string) (map[string]int, error) {
			return nil, nil
		})
		if err != nil || len(m) != 0 {
			t.Errorf("nil map nil error: %v, %v", m, err)
		}
		// loadMany calling GetOrSet of an unrelated key.
		m, err = cache.GetOrSetMany(ctx, c, []string{"u1", "u2"}, time.Minute, func(ctx context.Context, keys []string) (map[string]int, error) {
			v, err := cache.GetOrSet(ctx, c, "other", time.Minute, func(context.Context) (int, error) { return 7, nil })
			out := map[string]int{}
			for _, k := range keys {
				out[k] = v
			}
			return out, err
		})
		if err != nil || m["u1"] != 7 || m["u2"] != 7 {
			t.Errorf("nested GetOrSet: %v, %v", m, err)
		}
		// ctx cancelled mid-batch: the caller returns promptly.
		cctx, cancel := context.WithCancel(ctx)
		release := make(chan struct{})
		got := make(chan error, 1)
		go func() {
			_, err := cache.GetOrSetMany(cctx, c, []string{"c1", "c2"}, time.Minute, func(context.Context, []string) (map[string]int, error) {
				<-release
				return map[string]int{"c1": 1, "c2": 2}, nil
			})
			got <- err
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case err := <-got:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled GetOrSetMany = %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("cancelled GetOrSetMany did not return")
		}
		close(release)
		// panic with a plain GetOrSet joined.
		started := make(chan struct{})
		pan := make(chan any, 2)
		go func() {
			defer func() { pan <- recover() }()
			cache.GetOrSetMany(ctx, c, []string{"p1", "p2"}, time.Minute, func(context.Context, []string) (map[string]int, error) {
				close(started)
				time.Sleep(100 * time.Millisecond)
				panic("boom")
			})
		}()
		<-started
		go func() {
			defer func() { pan <- recover() }()
			cache.GetOrSet(ctx, c, "p2", time.Minute, func(context.Context) (int, error) { return 2, nil })
		}()
		for range 2 {
			select {
			case p := <-pan:
				var lp *cache.LoadPanicError
				if e, ok := p.(error); !ok || !errors.As(e, &lp) {
					t.Errorf("recovered %v (%T), want *LoadPanicError", p, p)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("panic not delivered")
			}
		}
	})
}
