package telegram

import (
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestUTF16Len(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"hello", 5},
		{"héllo", 5},
		{"日本語", 3},
		{"😀", 2},
		{"a😀b", 4},
		{"👨‍💻", 5}, // man, ZWJ, laptop
	} {
		if got := utf16Len(tc.s); got != tc.want {
			t.Errorf("utf16Len(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestUTF16Slice(t *testing.T) {
	for _, tc := range []struct {
		s        string
		off, n   int
		want     string
		whatWhat string
	}{
		{"hello world", 6, 5, "world", "ascii"},
		{"😀 link", 3, 4, "link", "after an emoji (2 units)"},
		{"héllo wörld", 6, 5, "wörld", "latin-1 letters are 1 unit"},
		{"日本語 text", 4, 4, "text", "CJK"},
		{"a😀😀b", 1, 4, "😀😀", "two emojis"},
		{"abc", 2, 10, "c", "past the end"},
	} {
		if got := utf16Slice(tc.s, tc.off, tc.n); got != tc.want {
			t.Errorf("%s: utf16Slice(%q, %d, %d) = %q, want %q", tc.whatWhat, tc.s, tc.off, tc.n, got, tc.want)
		}
	}
}

func TestRenderEntities(t *testing.T) {
	for _, tc := range []struct {
		text string
		ents []Entity
		want string
	}{
		{"see docs", []Entity{{Type: "text_link", Offset: 4, Length: 4, URL: "https://x.org"}}, "see docs (https://x.org)"},
		{"😀 see docs now", []Entity{{Type: "text_link", Offset: 7, Length: 4, URL: "https://x.org"}}, "😀 see docs (https://x.org) now"},
		{"日本 a b", []Entity{
			{Type: "bold", Offset: 0, Length: 2},
			{Type: "text_link", Offset: 5, Length: 1, URL: "u2"},
			{Type: "text_link", Offset: 3, Length: 1, URL: "u1"},
		}, "日本 a (u1) b (u2)"},
		{"https://x.org", []Entity{{Type: "text_link", Offset: 0, Length: 13, URL: "https://x.org"}}, "https://x.org"},
	} {
		if got := renderEntities(tc.text, tc.ents); got != tc.want {
			t.Errorf("renderEntities(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestChunk(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		max  int
	}{
		{"short", "hello", 10},
		{"empty", "", 10},
		{"ascii", strings.Repeat("abcdefghij", 1000), 4096},
		{"words", strings.Repeat("word ", 2000), 4096},
		{"lines", strings.Repeat("a line\n", 1000), 4096},
		{"emoji at the boundary", "a" + strings.Repeat("😀", 3000), 4096},
		{"emoji odd max", strings.Repeat("😀", 10), 5},
		{"mixed", strings.Repeat("é日😀 ", 1500), 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := chunk(tc.s, tc.max)
			if strings.Join(parts, "") != tc.s {
				t.Fatalf("parts do not add up to the text")
			}
			for i, p := range parts {
				if n := utf16Len(p); n > tc.max {
					t.Errorf("part %d has %d UTF-16 units, max %d", i, n, tc.max)
				}
				if !utf8.ValidString(p) {
					t.Errorf("part %d is not valid UTF-8 (a rune was split)", i)
				}
				u := utf16.Encode([]rune(p))
				if len(u) > 0 && utf16.IsSurrogate(rune(u[len(u)-1])) && u[len(u)-1] < 0xDC00 {
					t.Errorf("part %d ends with a high surrogate", i)
				}
				if p == "" && len(parts) > 1 {
					t.Errorf("part %d is empty", i)
				}
			}
		})
	}
}

// A run of whitespace longer than a part is not sent as a part of its
// own: Telegram refuses blank messages, and the parts after it would be
// lost with it.
func TestChunkSkipsBlankParts(t *testing.T) {
	for _, s := range []string{
		"a" + strings.Repeat(" ", 9000) + "b",
		"start" + strings.Repeat("\n", 9000) + "end",
		"end" + strings.Repeat(" \n", 5000),
	} {
		parts := chunk(s, 4096)
		var words []string
		for i, p := range parts {
			if strings.TrimSpace(p) == "" {
				t.Errorf("part %d of %d is blank", i+1, len(parts))
			}
			words = append(words, strings.Fields(p)...)
		}
		if got, want := strings.Join(words, " "), strings.Join(strings.Fields(s), " "); got != want {
			t.Errorf("parts hold %q, want %q", got, want)
		}
	}
}
