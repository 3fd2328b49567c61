package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	goredis "github.com/redis/go-redis/v9"
)

// Leases (store.Leaser) live under their own hash tag, so both keys of one
// lease share a Cluster slot and one script covers them:
//
//	<prefix>:lease:{=NAME}:h   string  "<token> <holder>", PX ttl
//	<prefix>:lease:{=NAME}:t   string  INCR counter: the last fencing token
//
// A lease key never starts with "<prefix>:{", so it cannot meet an
// account's or a bridge's keys. Acquire is SET NX PX done in a script
// together with the INCR of the token (so a token is issued only to the
// acquisition that succeeds, and tokens grow in acquisition order); Renew
// and Release are compare-and-set scripts on the whole "<token> <holder>"
// value. The ttl is counted by the server.

var (
	_ store.Leaser = (*Store)(nil)
)

func (s *Store) leaseKeys(name string) []string {
	base := s.prefix + ":lease:{=" + esc(name) + "}:" // "=": a hash tag is never empty
	return []string{base + "h", base + "t"}
}

func leaseValue(token int64, holder string) string {
	return strconv.FormatInt(token, 10) + " " + holder
}

// acquireScript: KEYS[1] holder key, KEYS[2] token counter; ARGV[1]
// holder, ARGV[2] ttl ms. Returns the token, or 0 when held by another.
var acquireScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local sp = string.find(v, ' ', 1, true)
  if string.sub(v, sp + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(v, 1, sp - 1))
  end
  return 0
end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. ' ' .. ARGV[1], 'PX', ARGV[2])
return t
`)

// renewScript: KEYS[1] holder key; ARGV[1] expected value, ARGV[2] ttl ms.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript: KEYS[1] holder key; ARGV[1] expected value.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func ttlMillis(ttl time.Duration) int64 {
	return max(ttl.Milliseconds(), 1)
}

// Acquire implements store.Leaser.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	t, err := acquireScript.Run(ctx, s.c, s.leaseKeys(name), holder, ttlMillis(ttl)).Int64()
	if err != nil {
		return 0, false, wrap(err)
	}
	return t, t > 0, nil
}

// Renew implements store.Leaser.
func (s *Store) Renew(ctx context.Context, name, holder string, token int64, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, s.c, s.leaseKeys(name)[:1], leaseValue(token, holder), ttlMillis(ttl)).Int64()
	if err != nil {
		return false, wrap(err)
	}
	return n == 1, nil
}

// Release implements store.Leaser.
func (s *Store) Release(ctx context.Context, name, holder string, token int64) error {
	return wrap(releaseScript.Run(ctx, s.c, s.leaseKeys(name)[:1], leaseValue(token, holder)).Err())
}

// Holder implements store.Leaser.
func (s *Store) Holder(ctx context.Context, name string) (string, int64, error) {
	v, err := s.c.Get(ctx, s.leaseKeys(name)[0]).Result()
	if errors.Is(err, goredis.Nil) {
		return "", 0, store.ErrNotFound
	}
	if err != nil {
		return "", 0, wrap(err)
	}
	tok, holder, ok := strings.Cut(v, " ")
	t, perr := strconv.ParseInt(tok, 10, 64)
	if !ok || perr != nil {
		return "", 0, errors.New("store: redis: malformed lease value")
	}
	return holder, t, nil
}
