package vault

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzOpen: a stored value that was tampered with, truncated or made up
// never opens, never panics, and the error never echoes it; a value sealed
// by the vault always opens with its binding only.
func FuzzOpen(f *testing.F) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	v, _ := NewKeys(k2, k1)
	good, _ := v.Seal("b|u|f", "secret")
	f.Add(good, "b|u|f", "pt")
	f.Add("v1:AAAA", "b", "")
	f.Add("k"+KeyID(k1)+":", "b", "x")
	f.Add("kzzzzzzzzzzzzzzzz:AAAA", "", "\x00")
	f.Fuzz(func(t *testing.T, sealed, binding, plaintext string) {
		if pt, err := v.Open(binding, sealed); err == nil {
			// Only a genuine ciphertext opens; the fuzzer cannot forge GCM.
			// (good differs per fuzzing process: nonces are random.)
			if binding != "b|u|f" || pt != "secret" {
				t.Fatalf("forged value opened: %q → %q", sealed, pt)
			}
		} else if len(sealed) > 8 && strings.Contains(err.Error(), sealed) {
			t.Fatalf("error echoes the value: %v", err)
		}
		s, err := v.Seal(binding, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := v.Open(binding, s); err != nil || pt != plaintext {
			t.Fatalf("round trip = %q, %v", pt, err)
		}
		if _, err := v.Open(binding+"x", s); err == nil {
			t.Fatal("value opened under another binding")
		}
		if id, ok := SealedKeyID(s); !ok || id != KeyID(k2) || !v.Current(s) {
			t.Fatalf("sealed value %q names key %q", s, id)
		}
	})
}
