// Package counter reads and adds to the integers that Increment stores as
// decimal text, for package cache and the stores below it.
package counter

import (
	"fmt"
	"strconv"

	"github.com/ushka-go/ushka/internal/errs"
)

// Parse reads a counter's stored value, a decimal integer as Redis's
// INCRBY accepts it: an optional minus sign and digits, without a plus
// sign, leading zeros, "-0" or spaces, in the range of int64. Anything else
// is an error matching errs.ErrNotInteger, so that a value one backend
// refuses, every backend refuses.
func Parse(b []byte) (int64, error) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	ok := len(digits) > 0 && len(digits) <= 19 && (digits[0] != '0' || len(b) == 1)
	for _, d := range digits {
		ok = ok && d >= '0' && d <= '9'
	}
	if !ok {
		return 0, fmt.Errorf("%w: %.40q", errs.ErrNotInteger, b)
	}
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
