// Package xep0106 implements XEP-0106 JID Escaping for localparts: the ten
// characters space " & ' / : < > @ \ are written as a backslash and two
// lowercase hex digits.
//
// Escape follows the spec's business rules (§4): the nine disallowed
// characters are always escaped; a backslash is escaped to \5c only when it
// begins one of the ten escape sequences in the source (so "c:\5commas"
// becomes "c\3a\5c5commas"), every other backslash is kept as it is ("c:\net"
// becomes "c\3a\net"). The examples 9 to 11 of the spec's §5.1 table escape
// every backslash, which contradicts the rule that nothing but the
// disallowed characters and such backslashes may be escaped; Unescape reads
// both forms back to the same string.
//
// Leading and trailing spaces: the spec forbids \20 as the first or last
// character sequence of an escaped localpart, so Escape drops spaces (U+0020)
// at either end of its input; Escape(" bob ") == "bob". Spaces inside are
// escaped. Unescape turns every \20 into a space, wherever it stands.
//
// Unescape replaces only the ten lowercase sequences and leaves everything
// else, including partial and uppercase sequences such as \2plus, foo\bar,
// foob\41r or \5C, as it is. It never fails or panics, whatever the input.
//
// Escaping is for localparts only. Servers case-fold localparts, so compare
// and store escaped forms, and unescape only for display or for the legacy
// network (after the JID has been normalised).
package xep0106

import "strings"

// escaped maps the ten characters to their escape sequences.
var escaped = [256]string{
	' ':  `\20`,
	'"':  `\22`,
	'&':  `\26`,
	'\'': `\27`,
	'/':  `\2f`,
	':':  `\3a`,
	'<':  `\3c`,
	'>':  `\3e`,
	'@':  `\40`,
	'\\': `\5c`,
}

// seqChar returns the character the escape sequence starting at s[i] (a
// backslash) stands for, and whether s[i:] starts one of the ten.
func seqChar(s string, i int) (byte, bool) {
	if i+2 >= len(s) {
		return 0, false
	}
	switch s[i+1 : i+3] {
	case "20":
		return ' ', true
	case "22":
		return '"', true
	case "26":
		return '&', true
	case "27":
		return '\'', true
	case "2f":
		return '/', true
	case "3a":
		return ':', true
	case "3c":
		return '<', true
	case "3e":
		return '>', true
	case "40":
		return '@', true
	case "5c":
		return '\\', true
	}
	return 0, false
}

// Escape returns s escaped for use as a JID localpart.
func Escape(s string) string {
	s = strings.Trim(s, " ")
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s, i) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	last := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s, i) {
			b.WriteString(s[last:i])
			b.WriteString(escaped[s[i]])
			last = i + 1
		}
	}
	b.WriteString(s[last:])
	return b.String()
}

func needsEscape(s string, i int) bool {
	c := s[i]
	if c == '\\' {
		_, ok := seqChar(s, i)
		return ok
	}
	return escaped[c] != ""
}

// Unescape returns the unescaped form of an escaped localpart.
func Unescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		if s[i] == '\\' {
			if c, ok := seqChar(s, i); ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}
