package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/ushka-go/ushka/cache"
)

// FilledChannel follows the key prefix in the name of the Pub/Sub channel on
// which Fill and Unlock announce a key: watchers of the key in every process
// are woken. The 0xff byte keeps it apart from any channel of another
// application that uses the prefix as text.
const FilledChannel = "\xffushka:filled"

// maxToken bounds a lock token's length, as the entry layout does.
const maxToken = 64

var _ cache.Locker = (*Store)(nil)

// luaHeader holds what the scripts share: the server's clock and the
// header's parser and writer. A header that does not match the layout (see
// cache.Entry) makes parse return nil, and the entry is not lockable. The
// header is looked for in the first 158 bytes, as cache.ParseEntry does.
const luaHeader = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse(v)
  if string.sub(v, 1, 6) ~= '\255ushka' then return nil end
  local head = string.sub(v, 1, 158)
  local nl = string.find(head, '\n', 1, true)
  if not nl then return nil end
  local c, f, fl, lk, lu = string.match(string.sub(head, 1, nl - 1),
    '^\255ushka1 (%d+) (%d+) (%S+) (%S+) (%d+)$')
  if not c then return nil end
  if fl ~= '-' and not string.match(fl, '^[pstn]+$') then return nil end
  return {created = c, fresh = f, flags = fl, lock = lk, lockUntil = tonumber(lu),
    placeholder = string.find(fl, 'p', 1, true) ~= nil, nl = nl}
end

local function header(h, lock, lockUntil)
  return '\255ushka1 ' .. h.created .. ' ' .. h.fresh .. ' ' .. h.flags .. ' ' ..
    lock .. ' ' .. lockUntil .. '\n'
end

local function holds(h, token, now)
  return h ~= nil and h.lock == token and h.lockUntil > now
end

-- outlive keeps a locked entry at least until its lease ends: with KEEPTTL
-- alone, an entry whose ttl ends during a refresh vanished under the lease,
-- the holder's Fill was refused and another process loaded too.
local function outlive(key, lease)
  local pttl = redis.call('PTTL', key)
  if pttl >= 0 and pttl < tonumber(lease) then redis.call('PEXPIRE', key, lease) end
end
`

// lockScript: KEYS[1] the key; ARGV token, lease (ms), seen (ms, 0 for a
// missing key). It returns {acquired} when the key was missing, else
// {acquired, entry before the call}.
var lockScript = rueidis.NewLuaScript(luaHeader + `
local key, token, lease, seen = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local lockUntil = string.format('%d', now + tonumber(lease))
local v = redis.call('GET', key)
if not v then
  if seen ~= 0 then return {0} end
  redis.call('SET', key, '\255ushka1 ' .. string.format('%d', now) .. ' 0 p ' .. token .. ' ' ..
    lockUntil .. '\n', 'PX', lease)
  return {1}
end
local h = parse(v)
if h == nil or (h.lock ~= '-' and h.lockUntil > now) then return {0, v} end
if h.placeholder then
  redis.call('SET', key, '\255ushka1 ' .. string.format('%d', now) .. ' 0 p ' .. token .. ' ' ..
    lockUntil .. '\n', 'PX', lease)
  return {1, v}
end
if tonumber(h.created) ~= seen then return {0, v} end
redis.call('SET', key, header(h, token, lockUntil) .. string.sub(v, h.nl + 1), 'KEEPTTL')
outlive(key, lease)
return {1, v}
`)

// renewScript: KEYS[1] the key; ARGV token, lease (ms). It returns 1 when
// it renewed.
var renewScript = rueidis.NewLuaScript(luaHeader + `
local key, token, lease = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local v = redis.call('GET', key)
if not v then return 0 end
local h = parse(v)
if not holds(h, token, now) then return 0 end
local lockUntil = string.format('%d', now + tonumber(lease))
if h.placeholder then
  redis.call('SET', key, header(h, token, lockUntil), 'PX', lease)
else
  redis.call('SET', key, header(h, token, lockUntil) .. string.sub(v, h.nl + 1), 'KEEPTTL')
  outlive(key, lease)
end
return 1
`)

// fillScript: KEYS[1] the key; ARGV token, ttl (ms, 0 for none), entry,
// channel, message. It returns 1 when it stored.
var fillScript = rueidis.NewLuaScript(luaHeader + `
local key, token, ttl = KEYS[1], ARGV[1], ARGV[2]
local v = redis.call('GET', key)
if not v then return 0 end
if not holds(parse(v), token, now_ms()) then return 0 end
if ttl ~= '0' then
  redis.call('SET', key, ARGV[3], 'PX', ttl)
else
  redis.call('SET', key, ARGV[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`)

// unlockScript: KEYS[1] the key; ARGV token, channel, message. It returns 1
// when it released a lease. A lease whose time has passed is released too:
// no one else took it, or the header would name another token.
var unlockScript = rueidis.NewLuaScript(luaHeader + `
local key, token = KEYS[1], ARGV[1]
local v = redis.call('GET', key)
if not v then return 0 end
local h = parse(v)
if h == nil or h.lock ~= token then return 0 end
if h.placeholder then
  redis.call('DEL', key)
else
  redis.call('SET', key, header(h, '-', '0') .. string.sub(v, h.nl + 1), 'KEEPTTL')
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`)

// checkToken reports a token that cannot be written into a header: empty,
// "-" (no lock), longer than 64 bytes, or with a byte that is not printable
// ASCII (a space would split the header's fields).
func checkToken(token string) error {
	if token == "" || token == "-" || len(token) > maxToken {
		return fmt.Errorf("invalid lock token %q: want 1 to %d printable ASCII bytes, not \"-\"", token, maxToken)
	}
	for i := range len(token) {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("invalid lock token %q: want 1 to %d printable ASCII bytes, not \"-\"", token, maxToken)
		}
	}
	return nil
}

func checkLease(lease time.Duration) error {
	if lease <= 0 {
		return fmt.Errorf("invalid lease %v: want > 0", lease)
	}
	return nil
}

func millisArg(d time.Duration) string { return strconv.FormatInt(pxMillis(d), 10) }

// Lock implements [cache.Locker] in one script: a missing key (seen zero)
// gets a placeholder that expires with the lease; an entry with a header
// whose Created is seen, and no standing lease, gets the lock in its header,
// keeping its value and ttl; a placeholder whose lease has passed is taken
// over whatever seen is. A plain value (no header) and a header of another
// layout are not lockable: Lock returns false and the entry.
func (s *Store) Lock(ctx context.Context, key, token string, lease time.Duration, seen time.Time) (acquired bool, entry []byte, found bool, err error) {
	if err := errors.Join(checkToken(token), checkLease(lease)); err != nil {
		return false, nil, false, s.fail("lock", err)
	}
	defer s.forget(key) // each script may write the entry
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return false, nil, false, s.fail("lock", err)
	}
	var seenMs int64
	if !seen.IsZero() {
		seenMs = max(seen.UnixMilli(), 0)
	}
	reply, err := lockScript.Exec(ctx, c, []string{s.prefix + key},
		[]string{token, millisArg(lease), strconv.FormatInt(seenMs, 10)}).ToArray()
	if err != nil {
		return false, nil, false, s.fail("lock", err)
	}
	if len(reply) == 0 {
		return false, nil, false, s.fail("lock", errors.New("empty script reply"))
	}
	n, err := reply[0].AsInt64()
	if err != nil {
		return false, nil, false, s.fail("lock", err)
	}
	if len(reply) > 1 {
		if entry, err = reply[1].AsBytes(); err != nil {
			return false, nil, false, s.fail("lock", err)
		}
		if entry == nil {
			entry = []byte{}
		}
		found = true
	}
	return n == 1, entry, found, nil
}

// Renew implements [cache.Locker]: the lease of a placeholder is also its
// expiry (PX lease); an entry keeps its ttl. A lease whose time has passed
// is not renewed, even when no one has taken it over.
func (s *Store) Renew(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	if err := errors.Join(checkToken(token), checkLease(lease)); err != nil {
		return false, s.fail("renew", err)
	}
	defer s.forget(key) // each script may write the entry
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return false, s.fail("renew", err)
	}
	n, err := renewScript.Exec(ctx, c, []string{s.prefix + key}, []string{token, millisArg(lease)}).AsInt64()
	if err != nil {
		return false, s.fail("renew", err)
	}
	return n == 1, nil
}

// Fill implements [cache.Locker]: if token holds key's lease, SET key entry
// [PX ttl], then PUBLISH key on the notification channel, in one script. A
// lease whose time has passed no longer holds the key.
func (s *Store) Fill(ctx context.Context, key, token string, entry []byte, ttl time.Duration) (bool, error) {
	if err := checkToken(token); err != nil {
		return false, s.fail("fill", err)
	}
	if ttl < 0 {
		return false, s.fail("fill", fmt.Errorf("%w %v", cache.ErrInvalidTTL, ttl))
	}
	defer s.forget(key) // each script may write the entry
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return false, s.fail("fill", err)
	}
	px := "0"
	if ttl > 0 {
		px = millisArg(ttl)
	}
	n, err := fillScript.Exec(ctx, c, []string{s.prefix + key},
		[]string{token, px, rueidis.BinaryString(entry), s.prefix + FilledChannel, key}).AsInt64()
	if err != nil {
		return false, s.fail("fill", err)
	}
	return n == 1, nil
}

// Unlock implements [cache.Locker]: a placeholder is deleted, an entry's
// header gets its lock fields reset ("-" and 0) with its value and ttl kept,
// and the key's watchers are woken, in one script.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if err := checkToken(token); err != nil {
		return s.fail("unlock", err)
	}
	defer s.forget(key) // each script may write the entry
	ctx, cancel, c, err := s.begin(ctx)
	defer cancel()
	if err != nil {
		return s.fail("unlock", err)
	}
	err = unlockScript.Exec(ctx, c, []string{s.prefix + key}, []string{token, s.prefix + FilledChannel, key}).Error()
	if err != nil {
		return s.fail("unlock", err)
	}
	return nil
}

// Watch implements [cache.Locker]. It never waits for Redis: the first call
// starts the store's one subscription in the background, so a Fill that
// comes before that subscription is confirmed is not seen (callers re-check
// at an interval, as the contract says). A Watch after Close returns a
// channel that holds one wake-up, so that a waiter re-checks and meets
// [cache.ErrClosed].
func (s *Store) Watch(key string) (filled <-chan struct{}, stop func()) {
	return s.watch.add(s, key)
}

const (
	resubscribeMin = 50 * time.Millisecond
	resubscribeMax = time.Second
)

// watchHub is a Store's one subscription to its notification channel and
// the watchers of this process, by key.
type watchHub struct {
	mu       sync.Mutex
	keys     map[string]map[chan struct{}]struct{}
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	ready    chan struct{} // closed when the first subscription is confirmed
	confirms int           // subscriptions confirmed, for resetting the backoff
	wg       sync.WaitGroup
}

func (h *watchHub) add(s *Store, key string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || s.closed.Load() {
		ch <- struct{}{}
		return ch, func() {}
	}
	if !h.started {
		h.started = true
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		if h.ready == nil {
			h.ready = make(chan struct{})
		}
		h.wg.Add(1)
		go h.run(ctx, s)
	}
	if h.keys == nil {
		h.keys = map[string]map[chan struct{}]struct{}{}
	}
	set := h.keys[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		h.keys[key] = set
	}
	set[ch] = struct{}{}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if set := h.keys[key]; set != nil {
				delete(set, ch)
				if len(set) == 0 {
					delete(h.keys, key)
				}
			}
		})
	}
}

// wake sends, without blocking, to the watchers of key.
func (h *watchHub) wake(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.keys[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// run holds the subscription until ctx ends, subscribing again after an
// error with a backoff from resubscribeMin to resubscribeMax, reset by each
// confirmed subscription.
func (h *watchHub) run(ctx context.Context, s *Store) {
	defer h.wg.Done()
	channel := s.prefix + FilledChannel
	confirmed := func(sub rueidis.PubSubSubscription) {
		if sub.Kind != "subscribe" || sub.Channel != channel {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.confirms == 0 {
			close(h.ready)
		}
		h.confirms++
	}
	rctx := rueidis.WithOnSubscriptionHook(ctx, confirmed)
	backoff := resubscribeMin
	for {
		h.mu.Lock()
		before := h.confirms
		h.mu.Unlock()
		// A client of its own: Receive on the shared client made rueidis
		// redial there when Redis hung, and every other call of the store
		// then waited for that dial (about 5s) whatever its timeout.
		if c, err := rueidis.NewClient(s.plain); err == nil {
			_ = c.Receive(rctx, c.B().Subscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
				h.wake(m.Message)
			})
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		h.mu.Lock()
		if h.confirms != before {
			backoff = resubscribeMin
		}
		h.mu.Unlock()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, resubscribeMax)
	}
}

// stop ends the subscription and wakes every watcher, so that they re-check
// and meet ErrClosed; wait then waits for the goroutine to end.
func (h *watchHub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	if h.cancel != nil {
		h.cancel()
	}
	for _, set := range h.keys {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (h *watchHub) wait() { h.wg.Wait() }

// watchReady returns a channel closed once the store's subscription has
// been confirmed by the server for the first time: from then on a Fill in
// any process wakes this store's watchers (short of a reconnect). It starts
// nothing; call Watch first.
func (s *Store) watchReady() <-chan struct{} {
	h := &s.watch
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ready == nil {
		h.ready = make(chan struct{})
	}
	return h.ready
}
