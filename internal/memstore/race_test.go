//go:build race

package memstore

// raceEnabled reports whether the tests run under the race detector, which
// slows otter's writes tenfold and pads allocations under 16 bytes to 16.
const raceEnabled = true
