package bridges

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/legacy"
)

func TestPackFieldsRoundTrip(t *testing.T) {
	cases := [][]string{
		{"", "", ""},
		{"a", "b", "c"},
		{"12:34", "x:y:z", "3:abc"},
		{"nul\x00in\x00it", "", "last:with:colons\x00"},
		{"é€😀", "100", ""},
		{"only"},
	}
	for _, c := range cases {
		v := packFields(c...)
		got, ok := unpackFields(v, len(c))
		if !ok || !slices.Equal(got, c) {
			t.Errorf("unpack(pack(%q)) = %q, %v", c, got, ok)
		}
	}
	for _, bad := range []string{"", "x", ":a", "-1:a", "+1:ab", "01:ab", "9:short", "1a:b"} {
		if got, ok := unpackFields(bad, 2); ok {
			t.Errorf("unpackFields(%q, 2) = %q, want not ok", bad, got)
		}
	}
}

func FuzzUnpackFields(f *testing.F) {
	f.Add("3:abc2:dex", 3)
	f.Add("0:0:", 3)
	f.Fuzz(func(t *testing.T, v string, n int) {
		if n < 1 || n > 8 {
			return
		}
		fields, ok := unpackFields(v, n)
		if !ok {
			return
		}
		if len(fields) != n || packFields(fields...) != v {
			t.Fatalf("unpackFields(%q, %d) = %q, which packs to %q", v, n, fields, packFields(fields...))
		}
	})
}

// TestMessageRecordsAndOlderMaps checks the readers of message records on
// records and on the maps versions before them wrote.
func TestMessageRecordsAndOlderMaps(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &Bridge{domain: "gw.example", st: st, log: slog.New(slog.DiscardHandler)}
	u := &user{jid: "u@example", owner: "owner1"}
	put := func(ns, key, value string) {
		t.Helper()
		if err := st.PutMapping(ctx, b.domain, u.jid, ns, key, value, idMapTTL); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, got string, err error, want string) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", what, got, err, want)
		}
	}

	// Records.
	put(mapSent, "L1", sentRecord{StanzaID: "s1", OriginID: "o1", Excerpt: "hello"}.pack())
	put(mapSent, "L2", sentRecord{StanzaID: "s2"}.pack())
	sidIn := jidmap.StanzaID(b.domain, u.owner, legacy.MessageID("L3"))
	put(mapRecv, sidIn, recvRecord{LegacyID: "L3", Chat: "bob", Excerpt: "from them"}.pack())
	put(mapStanzaChat, "s1", packFields("bob", "L1"))
	put(mapRecv, "react-sid", recvRecord{}.pack())

	ref, err := b.ownRef(ctx, u, "L1")
	check("ownRef(L1)", ref, err, "o1")
	ref, err = b.ownRef(ctx, u, "L2")
	check("ownRef(L2) (no origin-id)", ref, err, "s2")
	ref, err = b.sentStanzaID(ctx, u, "L1")
	check("sentStanzaID(L1)", ref, err, "s1")
	q, err := b.quoteOf(ctx, u, "L1")
	check("quoteOf(L1)", q, err, "hello")
	q, err = b.quoteOf(ctx, u, "L3")
	check("quoteOf(L3) (delivered)", q, err, "from them")
	lid, err := b.resolveTarget(ctx, u, sidIn, "bob", true)
	check("resolveTarget(in)", string(lid), err, "L3")
	lid, err = b.resolveTarget(ctx, u, "react-sid", "bob", true)
	check("resolveTarget(delivery mark only)", string(lid), err, "")
	lid, err = b.resolveTarget(ctx, u, "s1", "bob", false)
	check("resolveTarget(own)", string(lid), err, "L1")
	// A message of another conversation is not a target (XEP-0308 §5,
	// XEP-0424, XEP-0444): unknown in this one.
	lid, err = b.resolveTarget(ctx, u, sidIn, "carol", true)
	check("resolveTarget(in, another chat)", string(lid), err, "")
	lid, err = b.resolveTarget(ctx, u, "s1", "carol", true)
	check("resolveTarget(own, another chat)", string(lid), err, "")
	if r, _, err := b.recvRecordOf(ctx, u, sidIn); err != nil || r != (recvRecord{LegacyID: "L3", Chat: "bob", Excerpt: "from them"}) {
		t.Errorf("recv record read back as %+v, %v", r, err)
	}
	if _, delivered, err := b.recvRecordOf(ctx, u, "react-sid"); err != nil || !delivered {
		t.Errorf("delivery mark not seen: %v, %v", delivered, err)
	}

	// A correction's quote wins over the record's.
	put(mapQuote, "L1", "hello, corrected")
	q, err = b.quoteOf(ctx, u, "L1")
	check("quoteOf(L1) after a correction", q, err, "hello, corrected")

	// Maps of older versions.
	put(mapLegacyOut, "O1", "os1")
	put(mapOriginOut, "O1", "oo1")
	put(mapLegacyOut, "O2", "os2")
	put(mapQuote, "O2", "old quote")
	put(mapStanzaIn, "old-sid", "O3")
	put(mapDelivered, "old-delivered", "1")
	ref, err = b.ownRef(ctx, u, "O1")
	check("ownRef(O1) from l2o", ref, err, "oo1")
	ref, err = b.ownRef(ctx, u, "O2")
	check("ownRef(O2) from l2s", ref, err, "os2")
	ref, err = b.sentStanzaID(ctx, u, "O1")
	check("sentStanzaID(O1) from l2s", ref, err, "os1")
	q, err = b.quoteOf(ctx, u, "O2")
	check("quoteOf(O2) from quote", q, err, "old quote")
	lid, err = b.resolveTarget(ctx, u, "old-sid", "any", true)
	check("resolveTarget from in-s2l", string(lid), err, "O3")
	// Records written before the chat was kept match any chat.
	put(mapStanzaOut, "old-own", "O4")
	put(mapRecv, "old-recv", recvRecord{LegacyID: "O5", Excerpt: "12:30 lunch"}.pack())
	lid, err = b.resolveTarget(ctx, u, "old-own", "any", false)
	check("resolveTarget from s2l", string(lid), err, "O4")
	lid, err = b.resolveTarget(ctx, u, "old-recv", "any", true)
	check("resolveTarget from a recv record without chat", string(lid), err, "O5")
	q, err = b.quoteOf(ctx, u, "O5")
	check("quoteOf(O5)", q, err, "")
	for _, sid := range []string{"old-sid", "old-delivered"} {
		if _, delivered, err := b.recvRecordOf(ctx, u, sid); err != nil || !delivered {
			t.Errorf("%s: older delivery not seen: %v, %v", sid, delivered, err)
		}
	}

	// Unknown everywhere.
	ref, err = b.sentStanzaID(ctx, u, "nope")
	check("sentStanzaID(unknown)", ref, err, "")
	q, err = b.quoteOf(ctx, u, "nope")
	check("quoteOf(unknown)", q, err, "")
	if _, delivered, err := b.recvRecordOf(ctx, u, "nope"); err != nil || delivered {
		t.Errorf("unknown stanza id seen as delivered: %v, %v", delivered, err)
	}
	// An unreadable record is ignored, not an error.
	put(mapSent, "bad", "x")
	ref, err = b.sentStanzaID(ctx, u, "bad")
	check("sentStanzaID(unreadable)", ref, err, "")
}
