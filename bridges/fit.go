package bridges

import (
	"fmt"
	"unicode/utf8"

	"github.com/jabbergate/jabbergate/component/stanza"
)

// Long texts. A legacy message can be longer than one XMPP stanza may be:
// a 700 KB mail, a long Telegram caption joined with its text. A stanza
// over the link's max_stanza_size is refused by component.Conn.Send (the
// server would close the stream for every user of the link, and again
// after each reconnection when the inbox sends it again), so the text of
// an inbound message is cut to fit, at a line or a character boundary,
// with a note saying how much is missing; the rest is not delivered.

// stanzaReserve is the room kept in a stanza for everything but its text:
// addresses, ids, subject, reply fallback, delay, the privilege wrapper.
const stanzaReserve = 16 << 10

// textBudget is the longest escaped text an inbound stanza may carry.
func (b *Bridge) textBudget() int {
	limit := b.opts.Link.MaxStanzaSize
	if limit <= 0 {
		limit = 256 << 10 // component's default
	}
	return max(limit-stanzaReserve, limit/2)
}

// fitText returns text cut so that, escaped, it takes at most budget
// bytes, with a note of what was cut; text itself when it fits.
func fitText(text string, budget int) string {
	if 6*len(text) <= budget || stanza.TextSize(text) <= budget {
		return text
	}
	note := fmt.Sprintf("\n\n[… cut by the gateway: the message is %d KiB, more than one XMPP message may carry]", (len(text)+1023)/1024)
	room := budget - stanza.TextSize(note)
	n, cut, lastLine := 0, 0, -1
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		if w := stanza.TextSize(text[i : i+size]); n+w > room {
			break
		} else {
			n += w
		}
		if text[i] == '\n' {
			lastLine = i
		}
		i += size
		cut = i
	}
	if lastLine > cut*3/4 { // a line boundary near the end
		cut = lastLine
	}
	return text[:cut] + note
}

// subjectBudget bounds a message's subject.
const subjectBudget = 4 << 10

// tooLargeNotice stands for an inbound stanza the link refused as too
// large: a message with its addresses and id saying so.
func tooLargeNotice(st *stanza.Element) *stanza.Element {
	m := stanza.New(stanza.NSComponent, "message", "type", "chat", "id", st.ID(), "from", st.From(), "to", st.To())
	return m.TextChild(stanza.NSComponent, "body", "[A message from this contact was too large to deliver over XMPP; it was not delivered.]")
}
