package sms

import "unicode/utf16"

// Encoding is the alphabet an SMS is sent in.
type Encoding string

// Encodings.
const (
	GSM7 Encoding = "GSM-7"
	UCS2 Encoding = "UCS-2"
)

// Segment sizes (3GPP TS 23.040 / 23.038): a single SMS carries 140
// octets, a part of a concatenated one 134 after the 6-octet UDH with an
// 8-bit reference.
const (
	gsmSingle  = 160 // septets
	gsmPart    = 153
	ucs2Single = 70 // UTF-16 units
	ucs2Part   = 67
)

// gsmBasic is the GSM 03.38 default alphabet (one septet each); the
// escape character 0x1B itself is left out.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExt is the default extension table: ESC + char, two septets each.
const gsmExt = "\f^{}\\[~]|€"

var gsmCost = func() map[rune]int {
	m := map[rune]int{}
	for _, r := range gsmBasic {
		m[r] = 1
	}
	for _, r := range gsmExt {
		m[r] = 2
	}
	return m
}()

// Segments is how a text is sent as SMS.
type Segments struct {
	Encoding Encoding
	// Units is the length in the encoding: septets (escapes count 2) for
	// GSM-7, UTF-16 code units for UCS-2.
	Units int
	// Count is the number of SMS the text takes.
	Count int
}

// Count returns the encoding an SMS would use for text (GSM-7 when every
// character is in the GSM 03.38 default alphabet or its extension table,
// else UCS-2) and the number of segments it takes. Parts are counted the
// way a splitter must cut them: an escape pair (GSM-7) or a surrogate pair
// (UCS-2) is never split across parts, so a part may hold one unit less
// than its capacity. National language shift tables are not used. The
// empty text is one segment.
func Count(text string) Segments {
	costs := make([]int, 0, len(text))
	enc := GSM7
	for _, r := range text {
		c, ok := gsmCost[r]
		if !ok {
			enc = UCS2
			break
		}
		costs = append(costs, c)
	}
	single, part := gsmSingle, gsmPart
	if enc == UCS2 {
		costs = costs[:0]
		for _, r := range text {
			costs = append(costs, utf16.RuneLen(r))
		}
		single, part = ucs2Single, ucs2Part
	}
	s := Segments{Encoding: enc}
	for _, c := range costs {
		s.Units += c
	}
	if s.Units <= single {
		s.Count = 1
		return s
	}
	used := 0
	s.Count = 1
	for _, c := range costs {
		if used+c > part {
			s.Count++
			used = 0
		}
		used += c
	}
	return s
}

// Split cuts text into the parts Count counted, in order: one part when it
// fits a single SMS, else parts of at most 153 septets or 67 UTF-16 units
// that never split an escape pair or a surrogate pair. Joined, the parts
// are text.
func Split(text string) []string {
	seg := Count(text)
	if seg.Count == 1 {
		return []string{text}
	}
	part := gsmPart
	if seg.Encoding == UCS2 {
		part = ucs2Part
	}
	parts := make([]string, 0, seg.Count)
	start, used := 0, 0
	for i, r := range text {
		c := utf16.RuneLen(r)
		if seg.Encoding == GSM7 {
			c = gsmCost[r]
		}
		if used+c > part {
			parts = append(parts, text[start:i])
			start, used = i, 0
		}
		used += c
	}
	return append(parts, text[start:])
}
