package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/ushka-go/ushka/internal/memstore"
)

// remote hides the in-memory store's zero-copy read, so that a Cache over
// it takes it for a remote store: what the breaker costs a call, without a
// network to drown it.
type remote struct{ *memstore.Store }

// BenchmarkBreakerCost reads and writes through a Cache over an in-process
// store taken for a remote one, with its breaker in front (breaker=on) and
// with the breaker taken out (breaker=off), to show the per-call cost of the
// breaker's bookkeeping in one run:
//
//	go test -run '^$' -bench BreakerCost -count 8 -cpu 1,2 ./cache/ | benchstat -col /breaker -
func BenchmarkBreakerCost(b *testing.B) {
	for _, on := range []bool{false, true} {
		for _, op := range []string{"get", "set"} {
			b.Run(fmt.Sprintf("op=%s/breaker=%v", op, map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
				s, err := memstore.New(memstore.Options{})
				if err != nil {
					b.Fatal(err)
				}
				c := New(remote{s})
				defer c.Close()
				if !on {
					c.store, c.brk = c.inner, nil
				}
				ctx := context.Background()
				if err := c.Set(ctx, "k", []byte("a value of some thirty bytes.."), 0); err != nil {
					b.Fatal(err)
				}
				v := []byte("a value of some thirty bytes..")
				b.RunParallel(func(pb *testing.PB) {
					var dst []byte
					for pb.Next() {
						var err error
						if op == "get" {
							_, err = c.Get(ctx, "k", &dst)
						} else {
							err = c.Set(ctx, "k", v, 0)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}
