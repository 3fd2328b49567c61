package component

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// FuzzStreamReader feeds the link's stanza decoder (size limiter, depth
// limit, DTD refusal, skipping refused stanzas) with arbitrary server
// output after a valid stream header: it must never panic, never return an
// element larger than the size limit or deeper than the depth limit, and
// either skip a failed stanza or classify the failure.
func FuzzStreamReader(f *testing.F) {
	for _, s := range []string{
		"<message from='a@localhost' to='echo.localhost'><body>hi</body></message>",
		"<iq type='result' id='1'/><presence/>",
		"<!DOCTYPE x><message/>",
		"<message><body>&xxe;</body></message>",
		"<message>" + strings.Repeat("<x>", 40) + strings.Repeat("</x>", 40) + "</message>",
		"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		"<message from='" + strings.Repeat("z", 600) + "'/>",
		"<message id='a'><body>" + strings.Repeat("b", 600) + "</body></message><iq type='get' id='2'/>",
		"<message>" + strings.Repeat("<x a='>'>", 9) + "<![CDATA[</x>]]><!-- </x> -->" + strings.Repeat("</x>", 9) + "</message><presence/>",
	} {
		f.Add(s)
	}
	const max, depthLimit = 512, 8
	f.Fuzz(func(t *testing.T, s string) {
		head := "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x'>"
		r := newReader(strings.NewReader(head+s), max)
		r.maxDepth = depthLimit
		if _, err := r.next(); err != nil {
			t.Fatalf("header: %v", err)
		}
		for range 50 {
			tok, err := r.next()
			if err != nil {
				r.classify(err, nil)
				return
			}
			start, ok := tok.(xml.StartElement)
			if !ok {
				return
			}
			el, err := r.element(start)
			if err != nil {
				ref, f := r.refuse(err, &start)
				if ref != nil {
					if ref.reason == "" {
						t.Fatalf("refused stanza without a reason: %+v", ref)
					}
					continue // skipped: the stream goes on
				}
				if f.err == nil {
					t.Fatalf("unclassified failure %v", err)
				}
				return
			}
			if n := len(el.String()); r.dec.InputOffset()-r.start > max {
				t.Fatalf("element of %d bytes (serialised %d) passed the %d-byte limit", r.dec.InputOffset()-r.start, n, max)
			}
			if d := elemDepth(el); d > depthLimit {
				t.Fatalf("element of depth %d passed the limit %d", d, depthLimit)
			}
		}
	})
}

func elemDepth(e interface {
	Children() []*stanza.Element
}) int {
	d := 0
	for _, c := range e.Children() {
		d = max(d, elemDepth(c))
	}
	return d + 1
}
