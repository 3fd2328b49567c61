package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store/internal/record"
)

// sweepBatch bounds the deletions of one sweep commit (a var for tests).
var sweepBatch = 10_000

func (s *Store) sweepLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Sweep(ctx) // best effort; the next tick retries
		}
	}
}

// Sweep deletes expired mappings and seen marks now and returns how many it
// deleted. It scans with iterators, visiting only each user's mappings and
// seen marks, and deletes in commits of at most 10 000 keys through the
// committer, which rechecks each expiry, so it is safe to run alongside
// other calls. It stops early when ctx ends.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	from := []byte{tagUser}
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		now := s.now().UnixNano()
		keys, next, err := s.expiredKeys(from, now, sweepBatch)
		if err != nil {
			return total, fmt.Errorf("store: sweep: %w", err)
		}
		if len(keys) > 0 {
			n := 0
			err := s.commit(func(w *writer) error {
				n = 0
				for _, k := range keys {
					exp, ok, err := w.expiry(k)
					if err != nil {
						return err
					}
					if ok && record.Expired(exp, now) {
						if err := w.b.Delete(k, nil); err != nil {
							return err
						}
						n++
					}
				}
				return nil
			}, false)
			if err != nil {
				return total, fmt.Errorf("store: sweep: %w", err)
			}
			total += n
		}
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// expiredKeys returns up to max expired mapping and seen-mark keys from
// key from on, and the key to resume at (nil when the scan is complete).
func (s *Store) expiredKeys(from []byte, now int64, max int) (keys [][]byte, next []byte, err error) {
	v, err := s.beginRead()
	if err != nil {
		return nil, nil, err
	}
	defer s.endRead(v)
	it, err := v.iter([]byte{tagUser}, []byte{tagUser + 1})
	if err != nil {
		return nil, nil, err
	}
	defer closeIter(it, &err)
	for valid := it.SeekGE(from); valid; {
		_, _, n, ok := splitUser(it.Key())
		if !ok { // not of the layout: skip
			valid = it.Next()
			continue
		}
		up := bytes.Clone(it.Key()[:n])
		for _, kind := range []byte{kindMap, kindSeen} {
			lo := append(bytes.Clone(up), kind)
			hi := successor(lo)
			if bytes.Compare(from, hi) >= 0 {
				continue
			}
			if bytes.Compare(from, lo) > 0 {
				lo = from
			}
			for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
				if len(keys) >= max {
					return keys, bytes.Clone(it.Key()), nil
				}
				v, err := it.ValueAndErr()
				if err != nil {
					return nil, nil, err
				}
				if len(v) >= 8 && record.Expired(binary.BigEndian.Uint64(v), now) {
					keys = append(keys, bytes.Clone(it.Key()))
				}
			}
			if err := it.Error(); err != nil {
				return nil, nil, err
			}
		}
		valid = it.SeekGE(successor(up))
	}
	return keys, nil, it.Error()
}
