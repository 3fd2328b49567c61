package bridges

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/legacy"
)

// Message records: what the gateway remembers of one message is one
// mapping, written once, instead of one mapping per question asked of it
// later. Every mapping is a random-key write in the store (a B+tree leaf
// rewritten in bbolt, a SET and a ZADD in Redis), and they were most of
// the store's work per message: an echoed message wrote six (l2s, l2o and
// quote for the user's message; in-s2l, quote and delivered for the
// answer), it now writes two (sent, recv) besides the s2l map that
// resolves the user's own stanza id.
//
//	sent: legacy id of a message the user sent → stanza id, origin-id, excerpt
//	recv: stanza id of a message delivered to the user → legacy id, excerpt
//
// A recv record is also the delivery mark: it is committed with the inbox
// ack, after the barrier, for every delivered entry (with no legacy id for
// entries that are not messages). Corrections keep writing the quote map
// (the excerpt changes, the ids do not), which is read first.
//
// Readers fall back to the older maps (l2s, l2o, in-s2l, delivered, and
// quote for every message), written by versions before the records, for
// as long as those live (idMapTTL).
const (
	mapSent = "sent"
	mapRecv = "recv"
)

// packFields joins fields into one store value: every field but the last
// as its length in decimal, ':' and its bytes; the last one as is. Any
// byte may appear in any field.
func packFields(fields ...string) string { return packTagged(0, fields...) }

// packTagged is packFields after a tag byte (none when 0), in one
// allocation.
func packTagged(tag byte, fields ...string) string {
	n := 1
	for _, f := range fields {
		n += len(f) + 4
	}
	var sb strings.Builder
	sb.Grow(n)
	if tag != 0 {
		sb.WriteByte(tag)
	}
	for i, f := range fields {
		if i < len(fields)-1 {
			sb.WriteString(strconv.Itoa(len(f)))
			sb.WriteByte(':')
		}
		sb.WriteString(f)
	}
	return sb.String()
}

// unpackFields splits a value of packFields into n fields; ok is false
// when v was not written by packFields with n fields.
func unpackFields(v string, n int) (fields []string, ok bool) {
	fields = make([]string, 0, n)
	for range n - 1 {
		colon := strings.IndexByte(v, ':')
		if colon <= 0 || colon > 9 || (v[0] == '0' && colon > 1) {
			return nil, false // no length, too long, or not as strconv.Itoa writes it
		}
		l := 0
		for _, c := range []byte(v[:colon]) {
			if c < '0' || c > '9' {
				return nil, false
			}
			l = l*10 + int(c-'0')
		}
		if l > len(v)-colon-1 {
			return nil, false
		}
		fields = append(fields, v[colon+1:colon+1+l])
		v = v[colon+1+l:]
	}
	return append(fields, v), true
}

// sentRecord is what the gateway keeps of a message the user sent, by its
// legacy id.
type sentRecord struct {
	StanzaID string // the stanza's id attribute
	OriginID string // its XEP-0359 origin-id, "" if none
	Excerpt  string // its first line, for reply fallbacks; "" if not kept
}

func (r sentRecord) pack() string { return packFields(r.StanzaID, r.OriginID, r.Excerpt) }

// recvRecord is what the gateway keeps of an entry delivered to the user,
// by the stanza id it was delivered with.
type recvRecord struct {
	LegacyID string // "" for entries that are not messages (a delivery mark only)
	Chat     string // the conversation it was delivered in; "" in records written before it was kept
	Excerpt  string
}

// pack writes a record with its chat as 'c' and three packed fields; a
// record without one as two packed fields, as before the chat was kept
// (packFields starts with a digit, so the two cannot be confused).
func (r recvRecord) pack() string {
	if r.Chat == "" {
		return packFields(r.LegacyID, r.Excerpt)
	}
	return packTagged('c', r.LegacyID, r.Chat, r.Excerpt)
}

// unpackRecv reads a value of recvRecord.pack.
func unpackRecv(v string) (recvRecord, bool) {
	if strings.HasPrefix(v, "c") {
		f, ok := unpackFields(v[1:], 3)
		if !ok {
			return recvRecord{}, false
		}
		return recvRecord{LegacyID: f[0], Chat: f[1], Excerpt: f[2]}, true
	}
	f, ok := unpackFields(v, 2)
	if !ok {
		return recvRecord{}, false
	}
	return recvRecord{LegacyID: f[0], Excerpt: f[1]}, true
}

// getMap reads one mapping; found is false when there is none.
func (b *Bridge) getMap(ctx context.Context, u *user, ns, key string) (v string, found bool, err error) {
	v, err = b.st.GetMapping(ctx, b.domain, u.jid, ns, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	return v, err == nil, err
}

// sentRecordOf returns the record of the user's message with legacy id
// lid, from the older l2s and l2o maps if it has none.
func (b *Bridge) sentRecordOf(ctx context.Context, u *user, lid string) (r sentRecord, found bool, err error) {
	v, found, err := b.getMap(ctx, u, mapSent, lid)
	if err != nil {
		return r, false, err
	}
	if found {
		f, ok := unpackFields(v, 3)
		if !ok {
			b.log.Warn("unreadable message record; ignored", "user", u.owner, "ns", mapSent)
			return r, false, nil
		}
		return sentRecord{StanzaID: f[0], OriginID: f[1], Excerpt: f[2]}, true, nil
	}
	if r.StanzaID, found, err = b.getMap(ctx, u, mapLegacyOut, lid); err != nil || !found {
		return sentRecord{}, false, err
	}
	r.OriginID, _, err = b.getMap(ctx, u, mapOriginOut, lid)
	return r, err == nil, err
}

// recvRecordOf returns the record of the entry delivered with stanza id
// sid, from the older in-s2l and delivered maps if it has none.
func (b *Bridge) recvRecordOf(ctx context.Context, u *user, sid string) (r recvRecord, found bool, err error) {
	v, found, err := b.getMap(ctx, u, mapRecv, sid)
	if err != nil {
		return r, false, err
	}
	if found {
		r, ok := unpackRecv(v)
		if !ok {
			b.log.Warn("unreadable message record; ignored", "user", u.owner, "ns", mapRecv)
			return recvRecord{}, false, nil
		}
		return r, true, nil
	}
	if r.LegacyID, found, err = b.getMap(ctx, u, mapStanzaIn, sid); err != nil || found {
		return r, found, err
	}
	_, found, err = b.getMap(ctx, u, mapDelivered, sid)
	return recvRecord{}, found, err
}

// quoteOf returns the excerpt kept of the legacy message lid, "" if none:
// a correction's (quote map) first, then the user's own message's, then
// a delivered message's (its stanza id is derived from lid).
func (b *Bridge) quoteOf(ctx context.Context, u *user, lid string) (string, error) {
	if q, found, err := b.getMap(ctx, u, mapQuote, lid); err != nil || found {
		return q, err
	}
	if r, found, err := b.sentRecordOf(ctx, u, lid); err != nil || found {
		return r.Excerpt, err
	}
	r, _, err := b.recvRecordOf(ctx, u, jidmap.StanzaID(b.domain, u.owner, legacy.MessageID(lid)))
	return r.Excerpt, err
}

// sentStanzaID returns the stanza id of the user's message with legacy id
// lid, "" if the gateway does not know it.
func (b *Bridge) sentStanzaID(ctx context.Context, u *user, lid string) (string, error) {
	r, _, err := b.sentRecordOf(ctx, u, lid)
	return r.StanzaID, err
}
