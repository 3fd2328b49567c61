package pebble

import (
	"bytes"
	"slices"
	"testing"
)

func TestComponents(t *testing.T) {
	strs := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "a", "a\x00", "a\x00b", "a\x01", "ab", "b", "\xff", "\xff\x00"}
	var encs [][]byte
	for _, s := range strs {
		e := appendComponent(nil, s)
		got, rest, ok := readComponent(append(bytes.Clone(e), "tail"...))
		if !ok || got != s || string(rest) != "tail" {
			t.Errorf("readComponent(appendComponent(%q)) = %q, %q, %v", s, got, rest, ok)
		}
		encs = append(encs, e)
	}
	// Byte order of the encodings is the order of the strings.
	if !slices.IsSortedFunc(encs, bytes.Compare) {
		t.Errorf("encodings out of order: %q", encs)
	}
	// No encoding is a prefix of another's.
	for i, a := range encs {
		for j, b := range encs {
			if i != j && bytes.HasPrefix(b, a) {
				t.Errorf("encoding of %q is a prefix of that of %q", strs[i], strs[j])
			}
		}
	}
	for _, bad := range []string{"", "a", "a\x00", "a\x00\x02", "\x00\xffa"} {
		if _, _, ok := readComponent([]byte(bad)); ok {
			t.Errorf("readComponent(%q) accepted", bad)
		}
	}
}

func TestSplitUser(t *testing.T) {
	for _, c := range []struct{ bridge, jid string }{{"", ""}, {"b\x00", "\x00j"}, {"a", "b|c"}} {
		k := mapKey(c.bridge, c.jid, "ns\x00", "key\x00")
		br, jid, n, ok := splitUser(k)
		if !ok || br != c.bridge || jid != c.jid || !bytes.Equal(k[:n], userPrefix(c.bridge, c.jid, 0)) {
			t.Errorf("splitUser(mapKey(%q, %q)) = %q, %q, %d, %v", c.bridge, c.jid, br, jid, n, ok)
		}
	}
	if _, _, _, ok := splitUser(keyVersion); ok {
		t.Error("splitUser accepted the version key")
	}
}

func TestSuccessor(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{0, 1}, []byte{0, 2}},
	} {
		if got := successor(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("successor(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
