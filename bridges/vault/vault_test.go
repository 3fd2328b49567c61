package vault

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, KeySize)
	k2 := bytes.Repeat([]byte{2}, KeySize)
	old, _ := New(map[int][]byte{1: k1})
	s1, err := old.Seal("b|alice|password", "hunter2")
	if err != nil || strings.Contains(s1, "hunter2") || !strings.HasPrefix(s1, "v1:") {
		t.Fatalf("Seal = %q, %v", s1, err)
	}
	v, _ := New(map[int][]byte{1: k1, 2: k2})
	if got, err := v.Open("b|alice|password", s1); err != nil || got != "hunter2" {
		t.Fatalf("Open old-key value = %q, %v", got, err)
	}
	s2, _ := v.Seal("b|alice|password", "hunter2")
	if !strings.HasPrefix(s2, "v2:") || s2 == s1 {
		t.Errorf("new values must use the newest key: %q", s2)
	}
	if _, err := v.Open("b|mallory|password", s2); !errors.Is(err, ErrOpen) {
		t.Errorf("value opened under another binding: %v", err)
	}
	if _, err := old.Open("b|alice|password", s2); !errors.Is(err, ErrOpen) {
		t.Errorf("unknown key version opened: %v", err)
	}
	for _, bad := range []string{"", "v2", "x2:abc", "v2:!!!", "v2:AAAA"} {
		if _, err := v.Open("b", bad); !errors.Is(err, ErrOpen) {
			t.Errorf("Open(%q) = %v", bad, err)
		}
	}
	if _, err := New(map[int][]byte{1: {1, 2}}); err == nil {
		t.Errorf("short key accepted")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "k")
	a, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(p)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second load = %x, %v; want %x", b, err, a)
	}
}
