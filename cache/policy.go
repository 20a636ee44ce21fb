package cache

import (
	"fmt"
	"time"
)

// GetOrSetOption changes one [GetOrSet] call: its fail-safe, early refresh
// and load timeouts, which otherwise come from the cache's [Config], or
// where it reports how the value was had.
type GetOrSetOption interface {
	applyGetOrSet(*policy)
	String() string
}

// policy is what one GetOrSet call does beyond cache-aside.
type policy struct {
	staleTTL     time.Duration
	refreshAhead float64
	throttle     time.Duration
	loadTimeout  time.Duration
	hardTimeout  time.Duration
	outcome      *Outcome
	tags         []string      // WithTags's: the loaded value is written with them
	missTTL      time.Duration // CacheMisses's: how long a key a batch load left out is known to be missing
}

// with returns p changed by opts, with its outcome reset to OutcomeNone.
func (p policy) with(opts []GetOrSetOption) policy {
	for _, o := range opts {
		if o != nil {
			o.applyGetOrSet(&p)
		}
	}
	p.report(OutcomeNone)
	return p
}

// report stores o where ReportOutcome asked.
func (p *policy) report(o Outcome) {
	if p.outcome != nil {
		*p.outcome = o
	}
}

// on reports whether the call needs entries with a header.
func (p *policy) on() bool { return p.staleTTL > 0 || p.refreshAhead > 0 }

type getOrSetOption struct {
	name string
	fn   func(*policy)
}

func (o getOrSetOption) applyGetOrSet(p *policy) { o.fn(p) }
func (o getOrSetOption) String() string          { return o.name }

// StaleFor turns fail-safe on for this call, keeping the entry d past its
// ttl (the stale_ttl of [Config]); 0 turns it off. A negative d is ignored.
func StaleFor(d time.Duration) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("StaleFor(%s)", d), func(p *policy) {
		if d >= 0 {
			p.staleTTL = min(d, MaxTTL)
		}
	}}
}

// RefreshAhead turns early refresh on for this call: a hit past ratio of
// the entry's ttl reloads it in the background (refresh_ahead of [Config]).
// 0 turns it off; a ratio outside [0, 1) is ignored.
func RefreshAhead(ratio float64) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("RefreshAhead(%v)", ratio), func(p *policy) {
		if ratio >= 0 && ratio < 1 {
			p.refreshAhead = ratio
		}
	}}
}

// FailSafeThrottle sets how long fail-safe serves a stale value before it
// tries the load again (fail_safe_throttle of [Config]). A d <= 0 is ignored.
func FailSafeThrottle(d time.Duration) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("FailSafeThrottle(%s)", d), func(p *policy) {
		if d > 0 {
			p.throttle = d
		}
	}}
}

// LoadTimeout sets the soft bound of this call's load (load_timeout of
// [Config]): with a stale value at hand, a load slower than d serves it,
// while the load goes on in the background and stores its value. 0 turns
// it off; a negative d is ignored.
func LoadTimeout(d time.Duration) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("LoadTimeout(%s)", d), func(p *policy) {
		if d >= 0 {
			p.loadTimeout = d
		}
	}}
}

// LoadHardTimeout cancels the load's context after d (load_hard_timeout of
// [Config]). 0 turns it off; a negative d is ignored.
func LoadHardTimeout(d time.Duration) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("LoadHardTimeout(%s)", d), func(p *policy) {
		if d >= 0 {
			p.hardTimeout = d
		}
	}}
}

// CacheMisses makes a [GetOrSetMany] remember, for d, the keys its load
// left out (they have no value): until d has passed they are left out of
// its result without being loaded again, in every process on a shared
// store, and read as missing by Get. A Set or Delete of such a key ends it
// at once. 0 (the default) keeps nothing; a negative d is ignored.
func CacheMisses(d time.Duration) GetOrSetOption {
	return getOrSetOption{fmt.Sprintf("CacheMisses(%s)", d), func(p *policy) {
		if d >= 0 {
			p.missTTL = min(d, MaxTTL)
		}
	}}
}

// Outcome is how a [GetOrSet] call had its value.
type Outcome uint8

const (
	// OutcomeNone: the call returned an error.
	OutcomeNone Outcome = iota
	// OutcomeHit: a fresh value was in the cache.
	OutcomeHit
	// OutcomeLoaded: a load ran for this call: its own, or one that another
	// caller, in this process or another, had started.
	OutcomeLoaded
	// OutcomeStale: fail-safe served a value past its ttl, since a fresh one
	// could not be had.
	OutcomeStale
)

func (o Outcome) String() string {
	switch o {
	case OutcomeHit:
		return "hit"
	case OutcomeLoaded:
		return "loaded"
	case OutcomeStale:
		return "stale"
	}
	return "none"
}

// ReportOutcome makes the call store in *o how it had its value:
//
//	var how cache.Outcome
//	r, err := cache.GetOrSet(ctx, c, "report", time.Minute, load, cache.ReportOutcome(&how))
//	w.Header().Set("X-Cache", how.String())
func ReportOutcome(o *Outcome) GetOrSetOption {
	return getOrSetOption{"ReportOutcome", func(p *policy) { p.outcome = o }}
}
