// Package counter reads and adds to the integers that Increment stores as
// decimal text, for package cache and the stores below it.
package counter

import (
	"fmt"
	"strconv"

	"github.com/ushka-go/ushka/internal/errs"
)

// Parse reads a counter's stored value, a decimal integer; anything else
// is an error matching errs.ErrNotInteger.
func Parse(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %.40q", errs.ErrNotInteger, b)
	}
	return n, nil
}

// Add returns cur + delta, or an error matching errs.ErrNotInteger when the
// sum overflows an int64.
func Add(cur, delta int64) (int64, error) {
	n := cur + delta
	if (delta > 0 && n < cur) || (delta < 0 && n > cur) {
		return 0, fmt.Errorf("%w: %d + %d overflows", errs.ErrNotInteger, cur, delta)
	}
	return n, nil
}
