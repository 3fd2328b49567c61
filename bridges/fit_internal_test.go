package bridges

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jabbergate/jabbergate/component/stanza"
)

func TestFitText(t *testing.T) {
	if got := fitText("short & sweet", 100); got != "short & sweet" {
		t.Errorf("a text that fits was changed: %q", got)
	}
	for _, text := range []string{
		strings.Repeat("x", 10000),
		strings.Repeat("&", 3000),             // escaped five times its length
		strings.Repeat("é😀", 2000),            // cut at a character boundary
		strings.Repeat("line of text\n", 800), // cut at a line
	} {
		got := fitText(text, 4096)
		if n := stanza.TextSize(got); n > 4096 {
			t.Errorf("escaped %d bytes > 4096", n)
		}
		if !utf8.ValidString(got) || !strings.Contains(got, "cut by the gateway") {
			t.Errorf("cut text = %q", got[max(0, len(got)-200):])
		}
		kept := got[:strings.Index(got, "\n\n[… cut")]
		if !strings.HasPrefix(text, kept) || len(kept) < 4096/6 {
			t.Errorf("kept %d bytes, not a prefix or too short", len(kept))
		}
		if strings.HasPrefix(text, "line") && !strings.HasSuffix(kept, "text") {
			t.Errorf("not cut at a line: ends %q", kept[len(kept)-20:])
		}
	}
}

func TestDefaultBody(t *testing.T) {
	for _, c := range []struct{ xml, want string }{
		{`<message xml:lang='en'><body xml:lang='fr'>Bonjour</body><body>Hello</body></message>`, "Hello"},
		{`<message xml:lang='en'><body xml:lang='de'>Hallo</body><body xml:lang='en'>Hello</body></message>`, "Hello"},
		{`<message><body xml:lang='de'>Hallo</body><body xml:lang='fr'>Bonjour</body></message>`, "Hallo"},
		{`<message xml:lang='en-US'><body xml:lang='de'>Hallo</body><body xml:lang='en-us'>Hello</body></message>`, "Hello"},
		{`<message><subject>s</subject><body>only</body></message>`, "only"},
		{`<message><subject>s</subject></message>`, ""},
		// A <body/> in another namespace is an extension (RFC 6121 §5.2.3).
		{`<message xmlns='jabber:component:accept'><body xmlns='urn:other'>FOREIGN</body><body>REAL</body></message>`, "REAL"},
		{`<message xmlns='jabber:component:accept'><body xmlns='urn:other'>FOREIGN ONLY</body></message>`, ""},
	} {
		if got := defaultBody(stanza.MustParse(c.xml)).Text(); got != c.want {
			t.Errorf("defaultBody(%s) = %q, want %q", c.xml, got, c.want)
		}
	}
}
