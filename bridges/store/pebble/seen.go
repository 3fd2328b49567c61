package pebble

// Seen-mark filters. MarkSeen writes a mark only if no live one is there,
// so every mark is looked up before it is written, and nearly every
// look-up is of a key the database does not hold: the stanza id of a new
// legacy event, the origin-id of a new message. A Pebble Get of an absent
// key seeks every memtable and consults a table filter per level; in the
// echo benchmarks that was a tenth of the gateway's CPU.
//
// The committer keeps in memory, for each user whose marks it has written
// or looked up since Open, a Bloom filter of the user's seen-mark keys as
// the database holds them (built on first use by one scan of the user's
// marks). A key the filter does not hold is absent and is written without
// a look-up. A key it holds (a replay, or a false positive, about 1 %) is
// looked up as before. Keys are added when written, before the round
// commits: a round that fails leaves keys the database lacks, which are
// false positives, never false negatives. Marks deleted by the sweeper
// stay in the filter the same way. DeleteAccount drops the user's filter.
// A filter that has taken in as many keys as it was sized for is rebuilt
// at twice the size on its next use, so the false-positive rate stays
// bounded and the rebuild cost is amortised.

import (
	"github.com/bits-and-blooms/bloom/v3"
	pebbledb "github.com/cockroachdb/pebble/v2"
)

const (
	seenFilterMin = 64   // keys a new filter is sized for, at least
	seenFilterFP  = 0.01 // its false-positive rate when full
)

// seenFilter is one user's filter.
type seenFilter struct {
	f      *bloom.BloomFilter
	n, max uint // keys added since built; keys it was sized for
}

// seenFilter returns the filter of the user whose seen-key prefix is sp
// (the user's prefix and kindSeen), building it if it is missing or full.
func (w *writer) seenFilter(sp []byte) (*seenFilter, error) {
	if f := w.s.seen[string(sp)]; f != nil && f.n < f.max {
		return f, nil
	}
	f, err := w.buildSeenFilter(sp)
	if err != nil {
		return nil, err
	}
	w.s.seen[string(sp)] = f
	return f, nil
}

// buildSeenFilter scans the user's marks as the round sees them (the
// database and the round's own writes) twice: to count, then to add.
func (w *writer) buildSeenFilter(sp []byte) (*seenFilter, error) {
	opts := &pebbledb.IterOptions{LowerBound: sp, UpperBound: successor(sp)}
	scan := func(each func(key []byte)) error {
		it, err := w.b.NewIter(opts)
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			each(it.Key()[len(sp):])
		}
		if err := it.Error(); err != nil {
			it.Close()
			return err
		}
		return it.Close()
	}
	var n uint
	if err := scan(func([]byte) { n++ }); err != nil {
		return nil, err
	}
	f := &seenFilter{max: max(2*n, seenFilterMin)}
	f.f = bloom.NewWithEstimates(f.max, seenFilterFP)
	if err := scan(f.add); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *seenFilter) add(key []byte) {
	f.f.Add(key)
	f.n++
}
