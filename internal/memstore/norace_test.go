//go:build !race

package memstore

// raceEnabled reports whether the tests run under the race detector.
const raceEnabled = false
