package cache_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/ushka-go/ushka/cache"
)

// TestCountersAndBulkAgainstAModel checks random sequences of Set, Add,
// Increment, Decrement, Delete, SetMany, DeleteMany, Get, GetMany, Set with
// tags and InvalidateTags on every backend against a map: each call's
// result, and what every key holds after it. Tagged entries have keys of
// their own (see Add and Increment on what they do to a tagged entry).
func TestCountersAndBulkAgainstAModel(t *testing.T) {
	bulkBackends(t, func(t *testing.T, c *cache.Cache) {
		rapid.Check(t, func(rt *rapid.T) {
			ctx := context.Background()
			if err := c.Clear(ctx); err != nil {
				rt.Fatal(err)
			}
			model := map[string]string{}    // key -> stored text (JSON of an int, or a counter)
			tagged := map[string][]string{} // tagged key -> its tags, while it reads
			tagGen := rapid.SampledFrom([]string{"x", "y", "z"})
			keyGen := rapid.SampledFrom([]string{"a", "b", "c", "d", "e"})
			small := rapid.Int64Range(-1000, 1000)
			for range rapid.IntRange(1, 40).Draw(rt, "steps") {
				k := keyGen.Draw(rt, "key")
				switch op := rapid.IntRange(0, 11).Draw(rt, "op"); op {
				case 9: // Set with tags, on keys of their own
					tk := "t" + k
					tags := rapid.SliceOfNDistinct(tagGen, 1, 2, rapid.ID[string]).Draw(rt, "tags")
					v := small.Draw(rt, "v")
					if err := c.Set(ctx, tk, v, 0, cache.WithTags(tags...)); err != nil {
						rt.Fatal(err)
					}
					tagged[tk] = tags
					model[tk] = strconv.FormatInt(v, 10)
				case 10: // InvalidateTags: every entry with the tag reads as missing
					tag := tagGen.Draw(rt, "tag")
					if err := c.InvalidateTags(ctx, tag); err != nil {
						rt.Fatal(err)
					}
					for tk, tags := range tagged {
						for _, t := range tags {
							if t == tag {
								delete(model, tk)
								delete(tagged, tk)
								break
							}
						}
					}
				case 11: // Get of a tagged key
					tk := "t" + k
					v, found, err := cache.Get[int64](ctx, c, tk)
					cur, had := model[tk]
					if err != nil || found != had || (had && strconv.FormatInt(v, 10) != cur) {
						rt.Fatalf("Get %q = %d, %v, %v; the model holds %q (%v)", tk, v, found, err, cur, had)
					}
				case 0: // Set an int: stored as JSON, which is decimal text too
					v := small.Draw(rt, "v")
					if err := c.Set(ctx, k, v, 0); err != nil {
						rt.Fatal(err)
					}
					model[k] = strconv.FormatInt(v, 10)
				case 1: // Set a string that is not a number
					if err := c.Set(ctx, k, "word", 0); err != nil {
						rt.Fatal(err)
					}
					model[k] = "word"
				case 2: // Add
					v := small.Draw(rt, "v")
					added, err := c.Add(ctx, k, v, 0)
					if err != nil {
						rt.Fatal(err)
					}
					_, had := model[k]
					if added == had {
						rt.Fatalf("Add %q = %v, with the key there: %v", k, added, had)
					}
					if added {
						model[k] = strconv.FormatInt(v, 10)
					}
				case 3, 4: // Increment or Decrement
					d := small.Draw(rt, "delta")
					var n int64
					var err error
					if op == 3 {
						n, err = c.Increment(ctx, k, d, 0)
					} else {
						n, err = c.Decrement(ctx, k, d, 0)
						d = -d
					}
					cur, had := model[k]
					base, perr := strconv.ParseInt(cur, 10, 64)
					switch {
					case had && perr != nil:
						if !errors.Is(err, cache.ErrNotInteger) {
							rt.Fatalf("Increment of %q holding %q = %d, %v; want ErrNotInteger", k, cur, n, err)
						}
					case err != nil || n != base+d:
						rt.Fatalf("Increment of %q holding %q by %d = %d, %v; want %d", k, cur, d, n, err, base+d)
					default:
						model[k] = strconv.FormatInt(n, 10)
					}
				case 5:
					if err := c.Delete(ctx, k); err != nil {
						rt.Fatal(err)
					}
					delete(model, k)
				case 6: // SetMany of two keys
					k2 := keyGen.Draw(rt, "key2")
					v := small.Draw(rt, "v")
					if err := c.SetMany(ctx, map[string]any{k: v, k2: v}, 0); err != nil {
						rt.Fatal(err)
					}
					model[k], model[k2] = strconv.FormatInt(v, 10), strconv.FormatInt(v, 10)
				case 7: // DeleteMany of two keys
					k2 := keyGen.Draw(rt, "key2")
					if err := c.DeleteMany(ctx, []string{k, k2}); err != nil {
						rt.Fatal(err)
					}
					delete(model, k)
					delete(model, k2)
				case 8: // Get as a number, when it is one
					v, found, err := cache.Get[int64](ctx, c, k)
					cur, had := model[k]
					want, perr := strconv.ParseInt(cur, 10, 64)
					if had && perr == nil && (err != nil || !found || v != want) {
						rt.Fatalf("Get[int64] %q = %d, %v, %v; want %d", k, v, found, err, want)
					}
					if !had && (found || err != nil) {
						rt.Fatalf("Get %q = found %v, %v; want a miss", k, found, err)
					}
				}
			}
			all, err := cache.GetMany[[]byte](ctx, c, []string{"a", "b", "c", "d", "e"})
			if err != nil {
				rt.Fatal(err)
			}
			tv, err := cache.GetMany[int64](ctx, c, []string{"ta", "tb", "tc", "td", "te"})
			if err != nil {
				rt.Fatal(err)
			}
			for tk, v := range tv {
				all[tk] = []byte(strconv.FormatInt(v, 10)) // a tagged entry's bytes have a header: compare values
			}
			if err != nil {
				rt.Fatal(err)
			}
			if len(all) != len(model) {
				rt.Fatalf("GetMany found %d keys, the model has %d: %v vs %v", len(all), len(model), all, model)
			}
			for k, want := range model {
				if got := string(all[k]); got != want {
					rt.Fatalf("%q holds %q, the model %q", k, got, want)
				}
			}
		})
	})
}
