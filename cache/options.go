package cache

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ushka-go/ushka/codec"
)

// Option configures a [Cache] in [New] or [Open]: what only code can set,
// beside what ushka.toml sets through [Config].
type Option interface {
	apply(*Cache)
	String() string
}

type optionFunc struct {
	name string
	fn   func(*Cache)
}

func (o optionFunc) apply(c *Cache) { o.fn(c) }
func (o optionFunc) String() string { return o.name }

// WithCodec sets the codec of values other than []byte and string.
// The default is [codec.JSON].
func WithCodec(cd codec.Codec) Option {
	return optionFunc{fmt.Sprintf("WithCodec(%s)", codecName(cd)), func(c *Cache) {
		if cd != nil {
			c.codec = cd
		}
	}}
}

// WithLogger sets the logger that reports the errors a [Cache] handles
// itself instead of returning them (a failed read in [GetOrSet], a failed
// store of a loaded value). The default is [slog.Default] at the time of New.
// A nil logger discards them.
func WithLogger(l *slog.Logger) Option {
	return optionFunc{"WithLogger", func(c *Cache) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.log = l
	}}
}

// WithDefaultTTL sets the time-to-live of entries written with ttl == 0.
// The default, 0, means such entries do not expire. A negative d is
// ignored; a d longer than [MaxTTL] is taken as MaxTTL.
func WithDefaultTTL(d time.Duration) Option {
	return optionFunc{fmt.Sprintf("WithDefaultTTL(%s)", d), func(c *Cache) {
		if d >= 0 {
			c.defaultTTL = min(d, MaxTTL)
		}
	}}
}

func codecName(cd codec.Codec) string {
	if cd == nil {
		return "nil"
	}
	return cd.Name()
}

// WithGetOrSetDefaults sets the options every [GetOrSet] call of the cache
// starts from, as the stale_ttl, refresh_ahead, fail_safe_throttle,
// load_timeout and load_hard_timeout keys of [Config] do; a call's own
// options override them. [ReportOutcome] is ignored here.
func WithGetOrSetDefaults(opts ...GetOrSetOption) Option {
	return optionFunc{fmt.Sprintf("WithGetOrSetDefaults%v", opts), func(c *Cache) {
		for _, o := range opts {
			if o != nil {
				o.applyGetOrSet(&c.policy)
			}
		}
		c.policy.outcome = nil
	}}
}

// optionsLogger returns the logger opts give a Cache ([WithLogger]'s, or
// [slog.Default]), by applying them to a Cache that is then dropped: an
// option only sets fields. [Open] hands it to the store it opens.
func optionsLogger(opts []Option) *slog.Logger {
	probe := &Cache{log: slog.Default()}
	for _, o := range opts {
		if o != nil {
			o.apply(probe)
		}
	}
	return probe.log
}
