package sms

import (
	"slices"
	"strings"
	"testing"
)

// Cases from the published rules (3GPP TS 23.038/23.040; Twilio's and
// GMS's segment guides cited in the package README): 160/153 septets for
// GSM-7, 70/67 UTF-16 units for UCS-2, extension characters cost two
// septets, escape and surrogate pairs are never split.
func TestCount(t *testing.T) {
	r := strings.Repeat
	cases := []struct {
		name  string
		text  string
		enc   Encoding
		units int
		count int
	}{
		{"empty", "", GSM7, 0, 1},
		{"hello", "Hello, world!", GSM7, 13, 1},
		{"160 GSM", r("a", 160), GSM7, 160, 1},
		{"161 GSM", r("a", 161), GSM7, 161, 2},
		{"306 GSM", r("a", 306), GSM7, 306, 2},
		{"307 GSM", r("a", 307), GSM7, 307, 3},
		{"459 GSM", r("a", 459), GSM7, 459, 3},
		{"460 GSM", r("a", 460), GSM7, 460, 4},
		{"GSM basic accents", "àÄéÉùìòØøÅåÆæßÑñÜü¿¡£¥§Δ", GSM7, 24, 1},
		{"80 euro = 160 septets", r("€", 80), GSM7, 160, 1},
		{"81 euro", r("€", 81), GSM7, 162, 2},
		{"extension chars", "{}[]~|^\\\f", GSM7, 18, 1},
		{"159 + escape", r("a", 159) + "[", GSM7, 161, 2},
		{"escape pair not split", r("a", 152) + "€" + r("a", 152), GSM7, 306, 3},
		{"backtick is not GSM", "`", UCS2, 1, 1},
		{"lower c cedilla is not GSM", "ç", UCS2, 1, 1},
		{"70 UCS-2", r("я", 70), UCS2, 70, 1},
		{"71 UCS-2", r("я", 71), UCS2, 71, 2},
		{"134 UCS-2", r("я", 134), UCS2, 134, 2},
		{"135 UCS-2", r("я", 135), UCS2, 135, 3},
		{"one non-GSM char switches all", r("a", 100) + "✓", UCS2, 101, 2},
		{"35 emoji = 70 units", r("😀", 35), UCS2, 70, 1},
		{"36 emoji", r("😀", 36), UCS2, 72, 2},
		{"surrogate pair not split", r("я", 66) + "😀" + r("я", 66), UCS2, 134, 3},
	}
	for _, c := range cases {
		got := Count(c.text)
		if got != (Segments{Encoding: c.enc, Units: c.units, Count: c.count}) {
			t.Errorf("%s: Count = %+v, want %s %d units %d segments", c.name, got, c.enc, c.units, c.count)
		}
	}
}

// Every part a greedy splitter would cut stays within its budget and no
// part is wasted: the count equals a reference split.
func TestCountMatchesReferenceSplit(t *testing.T) {
	alphabet := []string{"a", "€", "{", "é", "😀", "я", " "}
	seed := uint32(1)
	for i := 0; i < 300; i++ {
		var b strings.Builder
		n := int(seed % 400)
		for j := 0; j < n; j++ {
			seed = seed*1664525 + 1013904223
			pick := alphabet[seed%uint32(len(alphabet))]
			if i%2 == 0 && (pick == "😀" || pick == "я") {
				pick = "a" // half the texts stay GSM-7
			}
			b.WriteString(pick)
		}
		text := b.String()
		got := Count(text)
		parts := referenceSplit(text, got.Encoding)
		if len(parts) != got.Count || strings.Join(parts, "") != text {
			t.Fatalf("text %q: Count %+v, reference split into %d parts", text, got, len(parts))
		}
		if split := Split(text); !slices.Equal(split, parts) {
			t.Fatalf("text %q: Split = %q, reference %q", text, split, parts)
		}
	}
}

// referenceSplit cuts text rune by rune into parts of at most 153 septets
// or 67 UTF-16 units (a single part of 160/70 when everything fits).
func referenceSplit(text string, enc Encoding) []string {
	cost := func(r rune) int {
		if enc == GSM7 {
			return gsmCost[r]
		}
		if r > 0xFFFF {
			return 2
		}
		return 1
	}
	total := 0
	for _, r := range text {
		total += cost(r)
	}
	single, part := 160, 153
	if enc == UCS2 {
		single, part = 70, 67
	}
	if total <= single {
		return []string{text}
	}
	var parts []string
	var cur strings.Builder
	used := 0
	for _, r := range text {
		if used+cost(r) > part {
			parts = append(parts, cur.String())
			cur.Reset()
			used = 0
		}
		cur.WriteRune(r)
		used += cost(r)
	}
	return append(parts, cur.String())
}
