package cache

import "testing"

// TestQueueRemovesOnlyWhatWasReplayed: a key queued again while the
// replay of its first Delete runs stays queued, and a write that began
// before a queueing does not supersede it.
func TestQueueRemovesOnlyWhatWasReplayed(t *testing.T) {
	q := queue{max: 10}
	q.add("k")
	_, keys := q.snapshot() // a replay starts
	q.add("k")              // deleted again meanwhile
	q.written("k", false, keys["k"])
	if !q.holds("k") {
		t.Fatal("the replay of k's first Delete removed the second one, queued after the replay began")
	}
	mark := q.mark() // a Set of k begins
	q.add("k")       // and a Delete of k fails meanwhile
	q.written("k", false, mark)
	if !q.holds("k") {
		t.Fatal("a Set that began before a Delete was queued superseded it")
	}
	q.written("k", false, q.mark())
	if q.holds("k") || q.len() != 0 {
		t.Fatalf("a write that began after every queueing of k left it queued (len %d)", q.len())
	}
}

// TestQueueOverflowOwesAClear: past its bound the queue drops its keys for
// a Clear, which then covers every key (reads miss), and reports the first
// overflow only once until it empties.
func TestQueueOverflowOwesAClear(t *testing.T) {
	q := queue{max: 2}
	q.add("a")
	q.add("b")
	q.add("a") // already queued: no overflow
	if dropped, _ := q.add("c"); dropped != 3 {
		t.Fatalf("dropped = %d, want the 2 queued keys and the new one", dropped)
	}
	if !q.holds("anything") || q.len() != 1 {
		t.Fatalf("after an overflow: holds(anything) = %v, len = %d; want a Clear owed", q.holds("anything"), q.len())
	}
	q.add("d")
	q.add("e")
	if _, first := q.add("f"); first {
		t.Fatal("a second overflow before the queue emptied was reported as the first")
	}
	all, _ := q.snapshot()
	q.written("", true, all)
	if q.holds("d") {
		t.Fatal("keys queued before the Clear's replay began stay queued after it")
	}
	q.add("g")
	q.add("h")
	if _, first := q.add("i"); !first {
		t.Fatal("an overflow after the queue emptied was not reported")
	}
}
