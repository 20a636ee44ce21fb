//go:build race

package redis_test

// raceEnabled reports whether the tests run under the race detector, which
// slows every process of a multi-process test several times over.
const raceEnabled = true
