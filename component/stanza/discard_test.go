package stanza

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// TestDiscard: after a stanza too deep, or too large in its text, Discard
// skips exactly to its end, and the next stanza decodes intact.
func TestDiscard(t *testing.T) {
	const head = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
	const next = "<message from='n@localhost' to='c.localhost'><body>next &amp; last</body></message>"
	deep := func(n int, inner string) string {
		return "<message id='bad'>" + strings.Repeat("<x xmlns='urn:t' a='&gt;/'>", n) + inner + strings.Repeat("</x>", n) + "</message>"
	}
	for name, tc := range map[string]struct {
		bad      string
		maxDepth int
		limit    int64 // per-stanza byte budget (0: none)
	}{
		"deep":                          {deep(5, ""), 4, 0},
		"deep with self-closing":        {deep(5, "<y/><z b='/'/>"), 4, 0},
		"deep with quotes holding tags": {deep(6, `<y a="</x>" b='<x>'>t</y>`), 4, 0},
		"deep with CDATA and comment":   {deep(6, "<![CDATA[</x></message>]]><!-- </x></message> -->"), 4, 0},
		"deep with a PI":                {deep(6, "<?pi </x>?>"), 4, 0},
		"deep at the stanza's child":    {deep(3, ""), 1, 0},
		"large text":                    {"<message id='bad'><body>" + strings.Repeat("a&amp;b", 500) + "</body><x xmlns='u'/></message>", 0, 200},
		"large text in a nested child":  {"<message id='bad'><x xmlns='u'><y><body>" + strings.Repeat("z", 5000) + "</body></y></x></message>", 0, 300},
	} {
		t.Run(name, func(t *testing.T) {
			d := NewStreamDecoder(strings.NewReader(head+tc.bad+next), 64) // small buffer: many refills
			if ev, err := d.Next(); err != nil || ev != EventHeader {
				t.Fatalf("header: %v %v", ev, err)
			}
			if tc.limit > 0 {
				d.SetLimit(d.InputOffset() + tc.limit)
			}
			if ev, err := d.Next(); err != nil || ev != EventStart {
				t.Fatalf("bad stanza start: %v %v", ev, err)
			}
			if _, err := d.Element(tc.maxDepth); err == nil {
				t.Fatal("the bad stanza decoded")
			}
			if err := d.Discard(1 << 20); err != nil {
				t.Fatalf("Discard: %v", err)
			}
			d.SetLimit(1<<63 - 1)
			if ev, err := d.Next(); err != nil || ev != EventStart {
				t.Fatalf("next stanza start: %v %v", ev, err)
			}
			el, err := d.Element(0)
			if err != nil {
				t.Fatalf("next stanza: %v", err)
			}
			if el.From() != "n@localhost" || el.ChildText("", "body") != "next & last" {
				t.Errorf("next stanza = %s", el)
			}
		})
	}
}

// TestDiscardAtEveryCut: a stanza just over the byte limit stops anywhere
// in its last bytes — its closing tags, a self-closing child's "/>", an
// attribute value, a start tag's name — and Discard goes on from each of
// those places to the next stanza, which decodes intact, with a small and
// a large buffer.
func TestDiscardAtEveryCut(t *testing.T) {
	const head = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
	const next = "<message from='n@localhost' to='c.localhost'><body>next &amp; last</body></message>"
	bad := "<message id='bad' from='u@localhost/r'><body>" + strings.Repeat("e", 300) + "</body>" +
		"<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>" +
		"<origin-id xmlns='urn:xmpp:sid:0' id='a&gt;b/c'/><x xmlns='u'><y>t</y></x></message>"
	for _, bufSize := range []int{64, 4096} {
		for cut := 300; cut < len(bad); cut++ {
			d := NewStreamDecoder(strings.NewReader(head+bad+next), bufSize)
			if ev, err := d.Next(); err != nil || ev != EventHeader {
				t.Fatalf("header: %v %v", ev, err)
			}
			d.SetLimit(d.InputOffset() + int64(cut))
			if ev, err := d.Next(); err != nil || ev != EventStart {
				t.Fatalf("cut %d: bad stanza start: %v %v", cut, ev, err)
			}
			if _, err := d.Element(0); !errors.Is(err, ErrLimit) {
				t.Fatalf("cut %d: Element = %v, want ErrLimit", cut, err)
			}
			if err := d.Discard(1 << 20); err != nil {
				t.Fatalf("buffer %d, cut %d (%q|%q): Discard: %v", bufSize, cut, bad[max(cut-10, 0):cut], bad[cut:min(cut+10, len(bad))], err)
			}
			d.SetLimit(1<<63 - 1)
			if ev, err := d.Next(); err != nil || ev != EventStart {
				t.Fatalf("buffer %d, cut %d: next stanza start: %v %v", bufSize, cut, ev, err)
			}
			el, err := d.Element(0)
			if err != nil || el.From() != "n@localhost" || el.ChildText("", "body") != "next & last" {
				t.Fatalf("buffer %d, cut %d (%q|%q): next stanza = %v, %v", bufSize, cut, bad[max(cut-10, 0):cut], bad[cut:min(cut+10, len(bad))], el, err)
			}
		}
	}
}

// TestDiscardRefuses: a tag longer than the tag budget makes Discard fail
// instead of guessing, in a child's start tag and in the rest of a start
// tag cut by the byte limit.
func TestDiscardRefuses(t *testing.T) {
	const head = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
	d := NewStreamDecoder(strings.NewReader(head+"<message>"+strings.Repeat("<x>", 5)+"<y a='"+strings.Repeat("v", 5000)+"'/>"), 0)
	d.Next()
	d.Next()
	if _, err := d.Element(3); err != ErrTooDeep {
		t.Fatalf("Element = %v, want ErrTooDeep", err)
	}
	if err := d.Discard(1000); !errors.Is(err, ErrLimit) {
		t.Errorf("Discard of a start tag past its budget = %v, want ErrLimit", err)
	}
	d = NewStreamDecoder(strings.NewReader(head+"<message><body>b</body><y a='"+strings.Repeat("v", 5000)+"'/></message>"), 0)
	d.Next()
	d.SetLimit(d.InputOffset() + 100)
	d.Next()
	if _, err := d.Element(0); err != ErrLimit {
		t.Fatalf("Element = %v, want ErrLimit", err)
	}
	if err := d.Discard(1000); !errors.Is(err, ErrLimit) {
		t.Errorf("Discard of the rest of a start tag past its budget = %v, want ErrLimit", err)
	}
}

// hugeStanza generates a stream holding one stanza with n bytes of body
// text, then a small one, without holding the text.
type hugeStanza struct {
	head, tail string
	n          int64 // text bytes left
	chunk      []byte
}

func (h *hugeStanza) Read(p []byte) (int, error) {
	switch {
	case h.head != "":
		n := copy(p, h.head)
		h.head = h.head[n:]
		return n, nil
	case h.n > 0:
		n := copy(p[:min(int64(len(p)), h.n)], h.chunk)
		h.n -= int64(n)
		return n, nil
	case h.tail != "":
		n := copy(p, h.tail)
		h.tail = h.tail[n:]
		return n, nil
	}
	return 0, io.EOF
}

// TestDiscardHugeText: the character data of a refused stanza has no byte
// ceiling (a server without a c2s size limit routes a body of any size,
// and any of its users can send one), and skipping it keeps nothing: 40 MB
// of text, with entities and CDATA, cost no memory to skip, and the next
// stanza decodes intact.
func TestDiscardHugeText(t *testing.T) {
	const head = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
	const next = "<message from='n@localhost' to='c.localhost'><body>next &amp; last</body></message>"
	src := &hugeStanza{
		head:  head + "<message id='bad'><body>",
		n:     40 << 20,
		chunk: []byte(strings.Repeat("text &amp; &lt;tags&gt; <![CDATA[</body>]]> ", 1<<12)),
		tail:  "</body></message>" + next,
	}
	d := NewStreamDecoder(src, 4096)
	if ev, err := d.Next(); err != nil || ev != EventHeader {
		t.Fatalf("header: %v %v", ev, err)
	}
	d.SetLimit(d.InputOffset() + 1000)
	if ev, err := d.Next(); err != nil || ev != EventStart {
		t.Fatalf("bad stanza start: %v %v", ev, err)
	}
	if _, err := d.Element(0); !errors.Is(err, ErrLimit) {
		t.Fatalf("Element = %v, want ErrLimit", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := d.Discard(1000); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("skipping 40 MB allocated %d bytes", n)
	}
	d.SetLimit(1<<63 - 1)
	if ev, err := d.Next(); err != nil || ev != EventStart {
		t.Fatalf("next stanza start: %v %v", ev, err)
	}
	if el, err := d.Element(0); err != nil || el.From() != "n@localhost" || el.ChildText("", "body") != "next & last" {
		t.Fatalf("next stanza = %v, %v", el, err)
	}
}
