package redis

import (
	"fmt"
	"strings"
	"testing"
)

// hashTag returns the part of key Redis Cluster hashes: the content of the
// first {...} if non-empty, else the whole key.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestEsc(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"alice@example":   "alice@example",
		"a|b":             "a%7Cb",
		"{x}:y":           "%7Bx%7D%3Ay",
		"100%":            "100%25",
		"ü\\@/":           "ü\\@/",
		"%7C":             "%257C",
		"\x00\xff":        "\x00\xff",
		"}}}":             "%7D%7D%7D",
		"tel:+1 555 1234": "tel%3A+1 555 1234",
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestKeysDistinct checks that crafted bridges, JIDs, namespaces and keys
// yield distinct Redis keys, that every key of one user carries the same
// hash tag, and that user and bridge tags never coincide.
func TestKeysDistinct(t *testing.T) {
	s := &Store{prefix: "jg"}
	type tuple struct{ bridge, jid, ns, key string }
	tuples := []tuple{
		{"a", "b|c", "n", "k"}, {"a|b", "c", "n", "k"},
		{"a", "b}:map:n", "x", "k"}, {"a", "b", "n:k", ""}, {"a", "b", "n", ":k"},
		{"a", "b", "n:", "k"}, {"a", "b", "n", "k"}, {"a}", "b", "n", "k"}, {"{a", "b", "n", "k"},
		{"a%7C", "b", "n", "k"}, {"a", "%7Cb", "n", "k"}, {"a", "b", "n%3A", "k"},
		{"", "", "", ""}, {"", "|", "", ""}, {"|", "", "", ""},
	}
	keys := map[string]string{} // key → what it stands for
	claim := func(k, what string) {
		t.Helper()
		if prev, ok := keys[k]; ok && prev != what {
			t.Errorf("%s and %s share key %q", prev, what, k)
		}
		keys[k] = what
	}
	tags := map[string]tuple{}
	for _, tu := range tuples {
		u := s.user(tu.bridge, tu.jid)
		id := fmt.Sprintf("user %q/%q", tu.bridge, tu.jid)
		ks := map[string]string{
			u + "acct":                   id + " acct",
			u + "contacts":               id + " contacts",
			u + "q:in":                   id + " q:in",
			u + "q:out":                  id + " q:out",
			u + "ttl":                    id + " ttl",
			u + mapMember(tu.ns, tu.key): fmt.Sprintf("%s map %q/%q", id, tu.ns, tu.key),
			u + seenMember(tu.key):       fmt.Sprintf("%s seen %q", id, tu.key),
		}
		tag := hashTag(u + "acct")
		if !strings.Contains(tag, "|") {
			t.Errorf("user tag %q has no '|'", tag)
		}
		if prev, ok := tags[tag]; ok && (prev.bridge != tu.bridge || prev.jid != tu.jid) {
			t.Errorf("users %q and %q share hash tag %q", prev, tu, tag)
		}
		tags[tag] = tu
		for k, what := range ks {
			if hashTag(k) != tag {
				t.Errorf("key %q hashes on %q, not the user's %q", k, hashTag(k), tag)
			}
			claim(k, what)
		}
		for _, name := range []string{"accounts", "queues:in", "queues:out"} {
			bk := s.bridgeKey(tu.bridge, name)
			if strings.Contains(hashTag(bk), "|") {
				t.Errorf("bridge key %q has a user-like tag", bk)
			}
			claim(bk, fmt.Sprintf("bridge %q %s", tu.bridge, name))
		}
	}
	// Per-user map/seen keys differ for every (ns, key) of one user.
	u := s.user("b", "j")
	seen := map[string]bool{}
	for _, nk := range [][2]string{{"a:b", "c"}, {"a", "b:c"}, {"a", "b"}, {"a:", "b"}, {"", "a:b"}, {"seen", "x"}, {"", "seen:x"}} {
		k := u + mapMember(nk[0], nk[1])
		if seen[k] {
			t.Errorf("mapping (%q, %q) collides: %q", nk[0], nk[1], k)
		}
		seen[k] = true
	}
	if seen[u+seenMember("x")] {
		t.Error("a seen key collides with a mapping key")
	}
}
