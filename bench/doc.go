// Package bench measures Ushka's cache beside the caches a Go developer
// would pick instead, in one run, so that benchstat can show ratios. It is
// its own module, so that no peer reaches the library's go.mod. Run it with
// ./run (see README.md).
package bench
