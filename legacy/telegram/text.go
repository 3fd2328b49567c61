package telegram

import (
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Telegram counts text lengths and entity offsets in UTF-16 code units;
// Go strings are UTF-8. These helpers convert between the two.

// maxText is the longest message text Telegram accepts, in UTF-16 units.
const maxText = 4096

// maxCaption is the longest caption, in UTF-16 units.
const maxCaption = 1024

// utf16Len is the length of s in UTF-16 code units.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// byteOffset returns the byte index in s of the UTF-16 offset off. An
// offset inside a surrogate pair is moved to the start of its rune; one
// past the end gives len(s).
func byteOffset(s string, off int) int {
	if off <= 0 {
		return 0
	}
	u := 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if u+w > off {
			return i
		}
		u += w
	}
	return len(s)
}

// utf16Slice returns the part of s from UTF-16 offset off, length n, as
// entities address it.
func utf16Slice(s string, off, n int) string {
	start := byteOffset(s, off)
	end := byteOffset(s, off+n)
	if end < start {
		end = start
	}
	return s[start:end]
}

// renderEntities returns text with the targets of text_link entities
// appended after their anchor text ("docs (https://…)"), the only entity
// whose information is lost in plain text. Entities use UTF-16 offsets.
func renderEntities(text string, ents []Entity) string {
	type ins struct {
		at  int // byte offset
		str string
	}
	var adds []ins
	for _, e := range ents {
		if e.Type != "text_link" || e.URL == "" {
			continue
		}
		anchor := utf16Slice(text, e.Offset, e.Length)
		if strings.TrimSpace(anchor) == e.URL {
			continue
		}
		adds = append(adds, ins{at: byteOffset(text, e.Offset+e.Length), str: " (" + e.URL + ")"})
	}
	if len(adds) == 0 {
		return text
	}
	sort.SliceStable(adds, func(i, j int) bool { return adds[i].at < adds[j].at })
	var b strings.Builder
	last := 0
	for _, a := range adds {
		b.WriteString(text[last:a.at])
		b.WriteString(a.str)
		last = a.at
	}
	b.WriteString(text[last:])
	return b.String()
}

// chunk splits s into parts of at most max UTF-16 units, never inside a
// rune (so never inside a surrogate pair). It cuts after the last newline,
// else the last space, in the second half of a part when there is one.
func chunk(s string, max int) []string {
	var parts []string
	for utf16Len(s) > max {
		cut := byteOffset(s, max) // the longest prefix that fits
		if cut == 0 {
			_, cut = utf8.DecodeRuneInString(s)
		}
		head := s[:cut]
		if i := strings.LastIndexByte(head, '\n'); i >= len(head)/2 && i > 0 {
			cut = i + 1
		} else if i := strings.LastIndexByte(head, ' '); i >= len(head)/2 && i > 0 {
			cut = i + 1
		}
		// A part of whitespace only (a long run of blank lines) is not
		// sent: Telegram refuses it ("message text is empty"), and the
		// parts after it would never go.
		if strings.TrimSpace(s[:cut]) != "" {
			parts = append(parts, s[:cut])
		}
		s = s[cut:]
	}
	if strings.TrimSpace(s) != "" || len(parts) == 0 {
		parts = append(parts, s)
	}
	return parts
}
