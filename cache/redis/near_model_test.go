package redis_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ushka-go/ushka/cache/redis"
	"github.com/ushka-go/ushka/internal/redistest"
)

// The near cache's contract, as these tests check it:
//
//  1. Read-your-writes: once a Store's Set, Delete or Clear of a key has
//     returned nil, the same Store never reads the old value of that key.
//  2. Within one Store, concurrent Set, Delete, Clear and Get of a key are
//     linearizable: each key behaves as a register.
//  3. Another Store (another process) sees a write once its invalidation
//     arrives, never goes back in time (a read that starts after another
//     ended never returns an older version), and eventually reads the
//     latest version.

// kvOp is the kind of a register operation in a checked history.
type kvOp uint8

const (
	opGet kvOp = iota
	opSet
	opDelete // Delete, or this key's share of a Clear
)

// kvInput is an operation on one key of a Store.
type kvInput struct {
	op    kvOp
	key   string
	value string // for opSet
	clear bool   // opDelete as part of a Clear, for messages
}

// kvOutput is what an operation returned: a Get's value, or nothing for a
// write. unknown marks a write that failed: it may or may not have taken
// effect, and is recorded as still running at the end of the history.
type kvOutput struct {
	value   string
	found   bool
	near    bool // a Get answered from the near cache, for messages
	unknown bool
}

// kvState is one key's value in the sequential model: a register.
type kvState struct {
	value string
	found bool
}

// kvModel is a key-value store partitioned by key: each key is a register
// that Set writes, Delete (and Clear) empties, and Get reads.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range byKey {
				if !yield(k) {
					return
				}
			}
		})
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		switch in.op {
		case opGet:
			return out.found == st.found && (!st.found || out.value == st.value), st
		case opSet:
			return true, kvState{value: in.value, found: true}
		default:
			return true, kvState{}
		}
	},
	DescribeOperation: describeKV,
	DescribeState: func(state any) string {
		if st := state.(kvState); st.found {
			return strconv.Quote(st.value)
		}
		return "absent"
	},
}

func describeKV(input, output any) string {
	in, out := input.(kvInput), output.(kvOutput)
	var s string
	switch in.op {
	case opGet:
		s = fmt.Sprintf("Get(%s) -> absent", in.key)
		if out.found {
			s = fmt.Sprintf("Get(%s) -> %q", in.key, out.value)
		}
		if out.near {
			s += " (near)"
		}
	case opSet:
		s = fmt.Sprintf("Set(%s, %q)", in.key, in.value)
	default:
		s = fmt.Sprintf("Delete(%s)", in.key)
		if in.clear {
			s = fmt.Sprintf("Clear (of %s)", in.key)
		}
	}
	if out.unknown {
		s += " failed: outcome unknown"
	}
	return s
}

// checkKVModelRejectsStaleRead makes sure the model can fail: a Get that
// starts after a Set returned and reads the value before it is illegal.
func checkKVModelRejectsStaleRead(t *testing.T) {
	t.Helper()
	stale := []porcupine.Operation{
		{Input: kvInput{op: opSet, key: "k", value: "1"}, Output: kvOutput{}, Call: 0, Return: 1},
		{Input: kvInput{op: opSet, key: "k", value: "2"}, Output: kvOutput{}, Call: 2, Return: 3},
		{Input: kvInput{op: opGet, key: "k"}, Output: kvOutput{value: "1", found: true}, Call: 4, Return: 5},
	}
	if porcupine.CheckOperations(kvModel, stale) {
		t.Fatal("the register model accepts a stale read: the linearizability check would prove nothing")
	}
	deleted := []porcupine.Operation{
		{Input: kvInput{op: opSet, key: "k", value: "1"}, Output: kvOutput{}, Call: 0, Return: 1},
		{Input: kvInput{op: opDelete, key: "k"}, Output: kvOutput{}, Call: 2, Return: 3},
		{Input: kvInput{op: opGet, key: "k"}, Output: kvOutput{value: "1", found: true}, Call: 4, Return: 5},
	}
	if porcupine.CheckOperations(kvModel, deleted) {
		t.Fatal("the register model accepts a read of a deleted value")
	}
}

// TestNearLinearizable: within one near-cached Store, concurrent Set,
// Delete, Clear and Get (and GetNear) of a few keys by many goroutines form
// a linearizable history, key by key (guarantee 2, which includes
// read-your-writes, guarantee 1): no read returns a value that a write
// which returned before the read began had replaced. Eight goroutines make
// 500 operations each on three keys, one of them hot, mostly reads; the
// history is checked with porcupine, as a register per key. On a
// standalone server and on a Cluster of three masters, each alone and with
// a second Store (another process's connections) writing two other keys
// meanwhile, whose invalidations come on the same connections: the first
// Store's history must stay linearizable (it does not Clear then, which
// would delete the other's keys), and its reads of the other's keys must
// never go back in time (guarantee 3).
func TestNearLinearizable(t *testing.T) {
	checkKVModelRejectsStaleRead(t)
	t.Run("standalone", func(t *testing.T) {
		srv := redistest.Start(t)
		url := "redis://" + srv.Addr
		t.Run("alone", func(t *testing.T) { checkLinearizable(t, url, false) })
		t.Run("foreign_writer", func(t *testing.T) { checkLinearizable(t, url, true) })
	})
	t.Run("cluster", func(t *testing.T) {
		url := clusterURL(redistest.StartCluster(t, 3))
		t.Run("alone", func(t *testing.T) { checkLinearizable(t, url, false) })
		t.Run("foreign_writer", func(t *testing.T) { checkLinearizable(t, url, true) })
	})
}

const (
	linClients = 8
	linOps     = 500 // per client
)

var linKeys = []string{"k0", "k1", "k2"}

// checkLinearizable runs linClients goroutines of linOps random operations
// on linKeys through one near-cached Store on url, and checks the history.
// With foreign, a second Store writes other keys meanwhile (as
// foreignWriter describes), a tenth of the operations are reads of those
// keys, checked by foreignWriter's plan, and there is no Clear.
func checkLinearizable(t *testing.T, url string, foreign bool) {
	prefix := uniquePrefix(t)
	s := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	// Connected, and every key near-cached as absent, before the history
	// starts: reads change nothing, so the model's initial state holds.
	for _, k := range linKeys {
		if v, found, _ := getNear(t, s, k); found {
			t.Fatalf("%s = %q before any write", k, v)
		}
	}

	var fw *foreignWriter
	if foreign {
		fw = startForeignWriter(t, openStore(t, nearConfig(url, prefix)))
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	histories := make([][]porcupine.Operation, linClients)
	var stats [linClients]struct{ gets, near, sets, deletes, clears, failed, foreignReads int }
	var wg sync.WaitGroup
	for c := range linClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			st := &stats[c]
			var foreignSeen map[string]int // the last foreign step read, by key
			if fw != nil {
				foreignSeen = map[string]int{}
			}
			record := func(in kvInput, out kvOutput, call, ret int64) {
				histories[c] = append(histories[c], porcupine.Operation{
					ClientId: c, Input: in, Output: out, Call: call, Return: ret,
				})
			}
			for i := range linOps {
				// k0 is hot: more operations overlap on it.
				key := linKeys[0]
				if r := rng.IntN(10); r >= 6 {
					key = linKeys[1+r%2]
				}
				// Mostly reads: a write drops the key from the near cache,
				// and reads racing with writes are where it can fail.
				r := rng.IntN(100)
				if fw == nil {
					r += 10 // no reads of foreign keys
				}
				switch {
				case r < 10:
					// A read of a key of the foreign writer.
					st.foreignReads++
					fk := fw.plan.keys[rng.IntN(len(fw.plan.keys))]
					b, found, _, err := s.GetNear(ctx, fk)
					bound := int(fw.started.Load())
					if err != nil {
						st.failed++
						continue
					}
					last, err := fw.plan.observe(fk, foreignSeen[fk], string(b), found, bound)
					if err != nil {
						t.Errorf("client %d, read of the foreign writer's key %s, whose previous read saw step %d: %v", c, fk, foreignSeen[fk], err)
						return
					}
					foreignSeen[fk] = last
				case r < 25:
					st.sets++
					v := fmt.Sprintf("c%d-%d", c, i)
					call := now()
					err := s.Set(ctx, key, []byte(v), 0)
					ret := now()
					out := kvOutput{}
					if err != nil {
						st.failed++
						out.unknown, ret = true, math.MaxInt64
					}
					record(kvInput{op: opSet, key: key, value: v}, out, call, ret)
				case r < 31:
					st.deletes++
					call := now()
					err := s.Delete(ctx, key)
					ret := now()
					out := kvOutput{}
					if err != nil {
						st.failed++
						out.unknown, ret = true, math.MaxInt64
					}
					record(kvInput{op: opDelete, key: key}, out, call, ret)
				case r < 32 && fw == nil:
					// Clear deletes every key under the prefix, the foreign
					// writer's too: only without one. For each key it is a
					// Delete at some instant within the call, or nothing at
					// an instant the key is absent.
					st.clears++
					call := now()
					err := s.Clear(ctx)
					ret := now()
					out := kvOutput{}
					if err != nil {
						st.failed++
						out.unknown, ret = true, math.MaxInt64
					}
					for _, k := range linKeys {
						record(kvInput{op: opDelete, key: k, clear: true}, out, call, ret)
					}
				default:
					st.gets++
					call := now()
					var (
						b           []byte
						found, near bool
						err         error
					)
					if r%2 == 0 {
						b, found, near, err = s.GetNear(ctx, key)
					} else {
						b, found, err = s.Get(ctx, key)
					}
					ret := now()
					if err != nil {
						st.failed++ // a read that failed tells nothing
						continue
					}
					if near {
						st.near++
					}
					record(kvInput{op: opGet, key: key}, kvOutput{value: string(b), found: found, near: near}, call, ret)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(base)
	if fw != nil {
		fw.stop()
	}

	var history []porcupine.Operation
	var total struct{ gets, near, sets, deletes, clears, failed, foreignReads int }
	for c := range linClients {
		history = append(history, histories[c]...)
		st := stats[c]
		total.gets += st.gets
		total.near += st.near
		total.sets += st.sets
		total.deletes += st.deletes
		total.clears += st.clears
		total.failed += st.failed
		total.foreignReads += st.foreignReads
	}
	t.Logf("%d clients x %d ops in %v: %d Get (%d near), %d Set, %d Delete, %d Clear, %d failed",
		linClients, linOps, elapsed.Round(time.Millisecond), total.gets, total.near, total.sets,
		total.deletes, total.clears, total.failed)
	if fw != nil {
		t.Logf("foreign writer: %d steps meanwhile, %d reads of its keys by the checked Store",
			fw.started.Load(), total.foreignReads)
	}
	if total.failed > linClients*linOps/10 {
		t.Fatalf("%d of %d operations failed: the history checks too little", total.failed, linClients*linOps)
	}
	if total.near == 0 {
		t.Errorf("no Get was answered from the near cache: the near cache was not exercised")
	}

	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, time.Minute)
	t.Logf("porcupine: %s over %d operations in %v", res, len(history), time.Since(start).Round(time.Millisecond))
	if res != porcupine.Ok {
		reportNotLinearizable(t, res, history, info)
	}
}

// reportNotLinearizable fails t, showing for each key whose history is not
// linearizable the end of its longest linearizable prefix and the
// operations that could not follow it, and writes porcupine's
// visualization to a file.
func reportNotLinearizable(t *testing.T, res porcupine.CheckResult, history []porcupine.Operation, info porcupine.LinearizationInfo) {
	t.Helper()
	var msg strings.Builder
	fmt.Fprintf(&msg, "the history is not linearizable (porcupine: %s)\n", res)
	for _, part := range kvModel.Partition(history) {
		if r := porcupine.CheckOperationsTimeout(kvModel, part, time.Minute); r == porcupine.Ok {
			continue
		}
		key := part[0].Input.(kvInput).key
		ops := slices.SortedFunc(slices.Values(part), func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		// The longest linearizable prefix porcupine found for this key.
		var longest []porcupine.Operation
		for _, p := range info.PartialLinearizationsOperations() {
			if len(p) == 0 || len(p[0]) == 0 || p[0][0].Input.(kvInput).key != key {
				continue
			}
			for _, l := range p {
				if len(l) > len(longest) {
					longest = l
				}
			}
		}
		fmt.Fprintf(&msg, "key %s: %d operations, at most %d linearizable in call order; the end of that linearization:\n", key, len(ops), len(longest))
		in := map[porcupine.Operation]bool{}
		for _, op := range longest {
			in[op] = true
		}
		for _, op := range longest[max(0, len(longest)-8):] {
			fmt.Fprintf(&msg, "\t%s\n", describeTimed(op))
		}
		msg.WriteString("  the first operations (by call time) left out:\n")
		n := 0
		for _, op := range ops {
			if !in[op] && n < 8 {
				fmt.Fprintf(&msg, "\t%s\n", describeTimed(op))
				n++
			}
		}
	}
	if f, err := os.CreateTemp("", "ushka-near-linearizability-*.html"); err == nil {
		if err := porcupine.Visualize(kvModel, info, f); err == nil {
			fmt.Fprintf(&msg, "porcupine's visualization: %s\n", f.Name())
		}
		f.Close()
	}
	t.Error(msg.String())
}

func describeTimed(op porcupine.Operation) string {
	ret := "never"
	if op.Return != math.MaxInt64 {
		ret = time.Duration(op.Return).String()
	}
	return fmt.Sprintf("client %d [%v, %s]: %s", op.ClientId, time.Duration(op.Call), ret, describeKV(op.Input, op.Output))
}

// writerPlan is the sequence of writes of a single, sequential writer:
// step i (from 1) sets its key to the decimal string of i, deletes it, or
// clears every key under the prefix. Step 0 is the initial state: every
// key absent. A key's versions (the values it is set to) thus strictly
// increase, and each state a reader can see is named by the step that
// made it.
type writerPlan struct {
	keys   []string
	steps  []planStep         // steps[0] is the initial state
	absent map[string][]int   // by key, ascending: the steps after which it is absent (0 first)
	final  map[string]kvState // each key's value after the last step
	touch  map[string][]int   // by key, ascending: the steps that write it (Set, Delete, Clear)
}

type planStep struct {
	kind kvOp   // opSet or opDelete
	key  string // "" for a Clear
	clr  bool   // a Clear
}

func (p planStep) String() string {
	switch {
	case p.clr:
		return "Clear"
	case p.key == "":
		return "the initial state"
	case p.kind == opSet:
		return "Set(" + p.key + ")"
	default:
		return "Delete(" + p.key + ")"
	}
}

// newWriterPlan draws n steps on keys from seed: mostly Sets, some Deletes
// (a later Set writes the key again), and, with clears, a few Clears. It
// ends with a Set of every key and a Delete of the last, so that the
// final states include both a value and an absent key.
func newWriterPlan(seed uint64, keys []string, n int, clears bool) *writerPlan {
	rng := rand.New(rand.NewPCG(seed, 0x6e656172))
	steps := []planStep{{}}
	for len(steps) <= n {
		k := keys[rng.IntN(len(keys))]
		switch r := rng.IntN(100); {
		case r < 3 && clears:
			steps = append(steps, planStep{clr: true})
		case r < 15:
			steps = append(steps, planStep{kind: opDelete, key: k})
		default:
			steps = append(steps, planStep{kind: opSet, key: k})
		}
	}
	for _, k := range keys {
		steps = append(steps, planStep{kind: opSet, key: k})
	}
	steps = append(steps, planStep{kind: opDelete, key: keys[len(keys)-1]})

	p := &writerPlan{keys: keys, steps: steps, absent: map[string][]int{}, final: map[string]kvState{}}
	p.touch = map[string][]int{}
	for _, k := range keys {
		p.absent[k] = []int{0}
		p.final[k] = kvState{}
		p.touch[k] = []int{0}
	}
	for i, st := range steps[1:] {
		i++
		switch {
		case st.clr:
			for _, k := range keys {
				p.absent[k] = append(p.absent[k], i)
				p.final[k] = kvState{}
				p.touch[k] = append(p.touch[k], i)
			}
		case st.kind == opSet:
			p.final[st.key] = kvState{value: strconv.Itoa(i), found: true}
			p.touch[st.key] = append(p.touch[st.key], i)
		default:
			p.absent[st.key] = append(p.absent[st.key], i)
			p.final[st.key] = kvState{}
			p.touch[st.key] = append(p.touch[st.key], i)
		}
	}
	return p
}

// latest returns the last step at or before step that wrote key (0, the
// initial state, if none did): once step has returned, a read of key in
// the writer's process must see that state or a later one.
func (p *writerPlan) latest(key string, step int) int {
	ts := p.touch[key]
	j, found := slices.BinarySearch(ts, step)
	if found {
		return ts[j]
	}
	return ts[j-1] // ts[0] is 0 <= step
}

// observe checks a read of key that returned value (or absent) against
// the plan. last is the oldest state the read may see: the state the
// reader's previous read of key saw (or the state of the reader's own last
// write of it, for read-your-writes). bound is the last step the writer
// had begun when the read returned: no later state can have been read. It
// returns the step whose state the read saw: for a value, the step that
// wrote it; for absent, the earliest Delete or Clear (or the initial
// state) at or after last, which leaves the reader the most room. It
// fails when the read went back in time (a state older than last), or saw
// a state that was never there or not yet there.
func (p *writerPlan) observe(key string, last int, value string, found bool, bound int) (int, error) {
	if found {
		i, err := strconv.Atoi(value)
		if err != nil || i <= 0 || i >= len(p.steps) || p.steps[i].kind != opSet || p.steps[i].key != key {
			return 0, fmt.Errorf("%s = %q: the writer never wrote that value to %s", key, value, key)
		}
		if i < last {
			return 0, fmt.Errorf("%s = %s (step %d), older than the state of step %d (%v): went back in time", key, value, i, last, p.steps[last])
		}
		if i > bound {
			return 0, fmt.Errorf("%s = %s before the writer began step %d: a value from the future", key, value, i)
		}
		return i, nil
	}
	as := p.absent[key]
	j, _ := slices.BinarySearch(as, last)
	if j == len(as) || as[j] > bound {
		next := "none"
		if j < len(as) {
			next = fmt.Sprintf("step %d (%v), not yet begun", as[j], p.steps[as[j]])
		}
		return 0, fmt.Errorf("%s absent, older than the state of step %d (%v): the next Delete or Clear of %s is %s: went back in time",
			key, last, p.steps[last], key, next)
	}
	return as[j], nil
}

// checkPlanRejectsGoingBack makes sure observe can fail: on the plan
// Set(a), Set(a), Delete(a), Set(a), a read of 1 after 2, of absent after
// 4, of 4 before step 4 began, and of a value never written are refused;
// absent after 2 is the Delete of step 3.
func checkPlanRejectsGoingBack(t *testing.T) {
	t.Helper()
	p := &writerPlan{
		keys: []string{"a"},
		steps: []planStep{{}, {kind: opSet, key: "a"}, {kind: opSet, key: "a"},
			{kind: opDelete, key: "a"}, {kind: opSet, key: "a"}},
		absent: map[string][]int{"a": {0, 3}},
	}
	for _, c := range []struct {
		last, bound int
		value       string
		found       bool
		want        int // -1: refused
	}{
		{last: 2, bound: 4, value: "1", found: true, want: -1},
		{last: 4, bound: 4, found: false, want: -1},
		{last: 2, bound: 3, value: "4", found: true, want: -1},
		{last: 0, bound: 4, value: "3", found: true, want: -1},
		{last: 0, bound: 4, value: "x", found: true, want: -1},
		{last: 2, bound: 4, found: false, want: 3},
		{last: 2, bound: 2, found: false, want: -1},
		{last: 0, bound: 4, found: false, want: 0},
		{last: 2, bound: 4, value: "4", found: true, want: 4},
	} {
		got, err := p.observe("a", c.last, c.value, c.found, c.bound)
		if c.want < 0 && err == nil || c.want >= 0 && (err != nil || got != c.want) {
			t.Fatalf("observe(last %d, %q, found %v, bound %d) = %d, %v; want %d (-1: an error)",
				c.last, c.value, c.found, c.bound, got, err, c.want)
		}
	}
}

// run makes the plan's writes through w, in order, storing each step's
// number in started before it begins. After each write it checks that w
// reads it (guarantee 1). It stops at the first error, or when ctx ends.
func (p *writerPlan) run(ctx context.Context, w *redis.Store, started *atomic.Int64) error {
	return p.runAcked(ctx, w, started, nil)
}

// runAcked is run that also stores each step's number in acked (if not
// nil) once the step has returned nil.
func (p *writerPlan) runAcked(ctx context.Context, w *redis.Store, started, acked *atomic.Int64) error {
	for i, st := range p.steps[1:] {
		i++
		if ctx.Err() != nil {
			return nil
		}
		started.Store(int64(i))
		var err error
		switch {
		case st.clr:
			err = w.Clear(ctx)
		case st.kind == opSet:
			err = w.Set(ctx, st.key, []byte(strconv.Itoa(i)), 0)
		default:
			err = w.Delete(ctx, st.key)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("step %d, %v: %w", i, st, err)
		}
		if acked != nil {
			acked.Store(int64(i))
		}
		checked := []string{st.key}
		if st.clr {
			checked = p.keys
		}
		for _, k := range checked {
			want := kvState{}
			if st.kind == opSet && !st.clr {
				want = kvState{value: strconv.Itoa(i), found: true}
			}
			for range 2 { // the second read is usually the near cache's
				b, found, near, err := w.GetNear(ctx, k)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("read after step %d, %v: %w", i, st, err)
				}
				if found != want.found || found && string(b) != want.value {
					return fmt.Errorf("read-your-writes: after step %d, %v returned, the writer read %s = %q, found %v, near %v; want %q, found %v",
						i, st, k, b, found, near, want.value, want.found)
				}
			}
		}
	}
	return nil
}

// foreignWriter is a second Store running a long writerPlan (without
// Clears, which would delete the checked Store's keys) on keys of its own,
// f0 and f1, until stopped.
type foreignWriter struct {
	plan    *writerPlan
	started atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
}

// startForeignWriter starts running a long plan on the keys f0 and f1
// through w, until stop (or the end of the test).
func startForeignWriter(t *testing.T, w *redis.Store) *foreignWriter {
	ctx, cancel := context.WithCancel(t.Context())
	fw := &foreignWriter{
		plan:   newWriterPlan(uint64(time.Now().UnixNano()), []string{"f0", "f1"}, 20_000, false),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go func() {
		defer close(fw.done)
		if err := fw.plan.run(ctx, w, &fw.started); err != nil {
			t.Errorf("foreign writer: %v", err)
		}
	}()
	t.Cleanup(fw.stop) // before w is closed
	return fw
}

// stop stops the writer and waits for it. It may be called more than once.
func (fw *foreignWriter) stop() {
	fw.cancel()
	<-fw.done
}

// TestNearMonotonicAcrossProcesses: a Store that reads what another Store
// (another process's connections) writes never goes back in time, and
// sees the latest write in the end (guarantee 3). The writer runs a plan
// of Sets of strictly increasing versions, Deletes and Clears on three
// keys, checking after each that it reads its own write (guarantee 1);
// meanwhile four goroutines read the keys through a near-cached reader in
// a tight loop. For each goroutine and key, each read must see a state no
// older than its previous read saw: a version no lower, and absent only
// if a Delete or Clear of the key at or after the state it last saw had
// begun. Once the writer is done, every key must reach its final value
// within 5s. On a standalone server and on a Cluster of three masters.
func TestNearMonotonicAcrossProcesses(t *testing.T) {
	checkPlanRejectsGoingBack(t)
	t.Run("standalone", func(t *testing.T) {
		checkMonotonic(t, "redis://"+redistest.Start(t).Addr)
	})
	t.Run("cluster", func(t *testing.T) {
		checkMonotonic(t, clusterURL(redistest.StartCluster(t, 3)))
	})
}

const (
	monoSteps   = 600
	monoReaders = 4
)

var monoKeys = []string{"a", "b", "c"}

func checkMonotonic(t *testing.T, url string) {
	prefix := uniquePrefix(t)
	writer := openStore(t, nearConfig(url, prefix))
	reader := openStore(t, nearConfig(url, prefix))
	ctx := t.Context()
	for _, k := range monoKeys { // connected, and the keys near-cached as absent
		getNear(t, writer, k)
		getNear(t, reader, k)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	plan := newWriterPlan(seed, monoKeys, monoSteps, true)

	var started atomic.Int64
	var writing atomic.Bool
	writing.Store(true)
	var wg sync.WaitGroup
	var reads, nearReads, changes [monoReaders]int
	for g := range monoReaders {
		wg.Go(func() {
			last := map[string]int{}
			seen := map[string]string{}
			for i := 0; writing.Load(); i++ {
				k := monoKeys[i%len(monoKeys)]
				b, found, near, err := reader.GetNear(ctx, k)
				bound := int(started.Load())
				if err != nil {
					t.Errorf("reader %d: %v", g, err)
					return
				}
				reads[g]++
				if near {
					nearReads[g]++
				}
				if s := fmt.Sprint(string(b), found); s != seen[k] {
					seen[k] = s
					changes[g]++
				}
				step, err := plan.observe(k, last[k], string(b), found, bound)
				if err != nil {
					t.Errorf("reader %d, read %d (near %v), whose previous read of %s saw step %d: %v", g, reads[g], near, k, last[k], err)
					return
				}
				last[k] = step
				if near {
					// A near read makes no system call: without a pause,
					// the readers would keep the writer (and rueidis's
					// reading goroutines) off the CPUs of a 2-core machine
					// for most of each time slice.
					time.Sleep(time.Microsecond)
				}
			}
		})
	}
	start := time.Now()
	err := plan.run(ctx, writer, &started)
	writing.Store(false)
	wg.Wait()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer: %d steps in %v; readers: %v reads (%v near), %v changes seen",
		len(plan.steps)-1, time.Since(start).Round(time.Millisecond), reads, nearReads, changes)
	for _, k := range monoKeys {
		f := plan.final[k]
		waitNear(t, reader, k, f.value, f.found)
		// And it stays there: the near cache now holds it.
		if v, found, _ := getNear(t, reader, k); found != f.found || v != f.value {
			t.Fatalf("%s = %q, %v after it read the final %q, %v", k, v, found, f.value, f.found)
		}
	}
}

// TestNearReadYourWritesUnderConcurrentReads: guarantee 1 while other
// goroutines of the same Store read the key as fast as they can, so that
// reads are outstanding whenever a write returns, and their replies, sent
// before the write, may arrive after it returned (the race of
// redis/rueidis#534, across goroutines). A writer runs a plan of Sets of
// increasing versions, Deletes and Clears on one key, checking that it
// reads each of its writes; four readers read the key in a loop through
// the same Store. A read that begins after a write returned must see that
// write or a later one, and each reader's successive reads never go back
// in time. On a standalone server, where rueidis spreads the commands of
// a client over several connections (with GOMAXPROCS > 1), so that a
// write's reply can overtake the reply of a read sent before it.
func TestNearReadYourWritesUnderConcurrentReads(t *testing.T) {
	srv := redistest.Start(t)
	s := openStore(t, nearConfig("redis://"+srv.Addr, uniquePrefix(t)))
	ctx := t.Context()
	const key = "a"
	getNear(t, s, key)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	steps := 2000
	if raceEnabled {
		steps = 400 // the race detector slows every step; it also widens the window
	}
	plan := newWriterPlan(seed, []string{key}, steps, true)

	var started, acked atomic.Int64
	var writing atomic.Bool
	writing.Store(true)
	var wg sync.WaitGroup
	const readers = 4
	var reads, nearReads [readers]int
	for g := range readers {
		wg.Go(func() {
			last := 0 // the state this reader saw last
			for i := 0; writing.Load(); i++ {
				done := int(acked.Load()) // the writer's last step that returned before this read began
				var (
					b           []byte
					found, near bool
					err         error
				)
				if i%2 == 0 {
					b, found, near, err = s.GetNear(ctx, key)
				} else {
					b, found, err = s.Get(ctx, key)
				}
				bound := int(started.Load())
				if err != nil {
					t.Errorf("reader %d: %v", g, err)
					return
				}
				reads[g]++
				if near {
					nearReads[g]++
				}
				from := max(last, plan.latest(key, done))
				step, err := plan.observe(key, from, string(b), found, bound)
				if err != nil {
					t.Errorf("reader %d, read %d (near %v), begun after the writer's step %d (%v) returned, its previous read having seen step %d: %v",
						g, reads[g], near, done, plan.steps[done], last, err)
					return
				}
				last = step
				// A reader that never pauses keeps the writer off the CPUs of
				// a 2-core machine for most of each time slice.
				time.Sleep(time.Microsecond)
			}
		})
	}
	start := time.Now()
	err := plan.runAcked(ctx, s, &started, &acked)
	writing.Store(false)
	wg.Wait()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer: %d steps in %v; readers: %v reads (%v of them GetNear answered from the near cache)",
		len(plan.steps)-1, time.Since(start).Round(time.Millisecond), reads, nearReads)
}
