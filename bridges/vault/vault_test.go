package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, KeySize)
	k2 := bytes.Repeat([]byte{2}, KeySize)
	old, _ := New(map[int][]byte{1: k1})
	s1, err := old.Seal("b|alice|password", "hunter2")
	if err != nil || strings.Contains(s1, "hunter2") || !strings.HasPrefix(s1, "k"+KeyID(k1)+":") {
		t.Fatalf("Seal = %q, %v", s1, err)
	}
	v, _ := New(map[int][]byte{1: k1, 2: k2})
	if got, err := v.Open("b|alice|password", s1); err != nil || got != "hunter2" {
		t.Fatalf("Open old-key value = %q, %v", got, err)
	}
	s2, _ := v.Seal("b|alice|password", "hunter2")
	if !strings.HasPrefix(s2, "k"+KeyID(k2)+":") || s2 == s1 || !v.Current(s2) || v.Current(s1) {
		t.Errorf("new values must use the newest key: %q", s2)
	}
	if _, err := v.Open("b|mallory|password", s2); !errors.Is(err, ErrOpen) {
		t.Errorf("value opened under another binding: %v", err)
	}
	if _, err := old.Open("b|alice|password", s2); !errors.Is(err, ErrOpen) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unknown key opened: %v", err)
	}
	for _, bad := range []string{"", "v2", "x2:abc", "v2:!!!", "v2:AAAA", "k:AAAA", "kzz:AAAA"} {
		if _, err := v.Open("b", bad); !errors.Is(err, ErrOpen) {
			t.Errorf("Open(%q) = %v", bad, err)
		}
	}
	if _, err := New(map[int][]byte{1: {1, 2}}); err == nil {
		t.Errorf("short key accepted")
	}
	if _, err := NewKeys(k1, []byte{3}); err == nil {
		t.Errorf("short old key accepted")
	}
}

// legacySeal seals the way the vault did before key ids: "v<n>:".
func legacySeal(t *testing.T, key []byte, ver int, binding, pt string) string {
	t.Helper()
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return "v" + strconv.Itoa(ver) + ":" + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(pt), []byte(binding)))
}

func TestRotation(t *testing.T) {
	k1 := bytes.Repeat([]byte{1}, KeySize)
	k2 := bytes.Repeat([]byte{2}, KeySize)
	legacy := legacySeal(t, k1, 1, "b|u|token", "tok")
	first, _ := NewKeys(k1)
	sealed1, _ := first.Seal("b|u|password", "pw")
	// After rotation: k2 seals, k1 still opens both formats.
	rot, err := NewKeys(k2, k1)
	if err != nil || rot.KeyID() != KeyID(k2) {
		t.Fatal(err)
	}
	for in, want := range map[string]string{legacy: "tok", sealed1: "pw"} {
		b := "b|u|token"
		if want == "pw" {
			b = "b|u|password"
		}
		if got, err := rot.Open(b, in); err != nil || got != want {
			t.Errorf("Open(%q) after rotation = %q, %v", in, got, err)
		}
		if rot.Current(in) {
			t.Errorf("%q reported as sealed with the current key", in)
		}
	}
	// Without the old key the old values do not open; the error names the
	// key id, never a key.
	only2, _ := NewKeys(k2)
	_, err = only2.Open("b|u|password", sealed1)
	if !errors.Is(err, ErrOpen) || !strings.Contains(err.Error(), KeyID(k1)) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k1)) {
		t.Errorf("missing old key error = %v", err)
	}
	if _, err := only2.Open("b|u|token", legacy); !errors.Is(err, ErrOpen) {
		t.Errorf("legacy value opened with the wrong key: %v", err)
	}
	for s, want := range map[string]bool{sealed1: true, legacy: true, "hunter2": false, "v:x": false, "k12:x": false, "user@example.org": false} {
		if _, ok := SealedKeyID(s); ok != want {
			t.Errorf("SealedKeyID(%q) ok = %v", s, ok)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	a, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(p)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second load = %x, %v; want %x", b, err, a)
	}
	if c, err := LoadKey(p); err != nil || !bytes.Equal(a, c) {
		t.Fatalf("LoadKey = %x, %v; want %x", c, err, a)
	}
}

// A key file is never created with its directory: a typo in the path must
// not silently make a new key (stored credentials would stop opening).
func TestKeyFileDirectoryNotCreated(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "typo", "k")
	for name, f := range map[string]func(string) ([]byte, error){"LoadOrCreateKey": LoadOrCreateKey, "CreateKey": CreateKey} {
		if _, err := f(p); err == nil || !strings.Contains(err.Error(), p) || strings.Count(err.Error(), "vault:") != 1 {
			t.Errorf("%s in a missing directory: %v; want an error naming %s, prefixed once", name, err, p)
		}
	}
	if _, err := os.Stat(filepath.Dir(p)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the key's directory was created: %v", err)
	}
	if _, err := LoadKey(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadKey of a missing file = %v, want fs.ErrNotExist", err)
	}
}

// A key file that holds no key is named in the error.
func TestLoadKeyNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.key")
	if err := os.WriteFile(p, []byte("abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(string) ([]byte, error){"LoadKey": LoadKey, "LoadOrCreateKey": LoadOrCreateKey} {
		_, err := f(p)
		if err == nil || err.Error() != "vault: key file "+p+": key is 3 bytes, want 32" {
			t.Errorf("%s(%s) = %v", name, p, err)
		}
	}
}
