package bridges

import (
	"slices"
	"testing"

	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy"
)

func TestStripReplyFallbackCountsCodePoints(t *testing.T) {
	for _, tc := range []struct{ xml, want string }{
		// "> é🎉\n" is 5 code points (8 bytes).
		{`<message><body>&gt; é🎉
ok</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='5'/></fallback></message>`, "ok"},
		// Another fallback (not a reply's) is left alone.
		{`<message><body>&gt; q
ok</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:other'><body start='0' end='4'/></fallback></message>`, "> q\nok"},
		// Out-of-range or malformed ranges are ignored or clamped.
		{`<message><body>abc</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='2' end='99'/><body start='x' end='1'/><body start='2' end='1'/></fallback></message>`, "ab"},
		{`<message><body>abc</body></message>`, "abc"},
	} {
		st := stanza.MustParse(tc.xml)
		if got := stripReplyFallback(st, st.ChildText("", "body")); got != tc.want {
			t.Errorf("strip(%s) = %q, want %q", tc.xml, got, tc.want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	long := string(slices.Repeat([]rune("é"), 100))
	for in, want := range map[string]string{
		"hi":             "hi",
		" line\nsecond ": "line …",
		long:             string([]rune(long)[:quoteLen]) + "…",
	} {
		if got := excerpt(in); got != want {
			t.Errorf("excerpt(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReactionRestrictionsForm(t *testing.T) {
	b := &Bridge{info: legacy.Info{Caps: legacy.Caps{Edits: true, Reactions: true}, MaxReactions: 1, AllowedReactions: []string{"👍", "❤️"}}}
	want := `<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:reactions:0:restrictions</value></field><field var='max_reactions_per_user'><value>1</value></field><field var='allowlist'><value>👍</value><value>❤️</value></field></x>`
	if got := b.reactionRestrictions().String(); got != want {
		t.Errorf("restrictions =\n%s\nwant\n%s", got, want)
	}
	b.info.MaxReactions, b.info.AllowedReactions = 0, nil
	if b.reactionRestrictions() != nil {
		t.Errorf("restrictions without limits")
	}
}
