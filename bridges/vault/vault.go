// Package vault seals legacy credentials at rest with AES-256-GCM.
//
// A sealed value is "k<key id>:" followed by base64(nonce ‖ ciphertext).
// The key id (KeyID: 16 hex digits of a SHA-256 of the key, not the key)
// names the key that sealed the value, so keys can be rotated: a vault
// holds the current key, which seals, and any number of old keys, which
// still open the values sealed with them; `jabbergate rotate-key` re-seals
// every stored value with a new key, after which the old one can go.
// Values written before key ids existed ("v<version>:") still open: by
// version with New, else by trying each key (GCM authentication makes a
// wrong key fail, never decrypt wrongly).
//
// The associated data binds a ciphertext to where it is stored (bridge, user,
// field), so a value copied into another user's record does not open.
// Errors never contain plaintext or keys.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// KeySize is the size of a key in bytes.
const KeySize = 32

// ErrOpen is returned when a sealed value cannot be opened: wrong key, wrong
// binding, or corrupted data.
var ErrOpen = errors.New("vault: cannot open sealed value")

// Vault seals and opens values. Safe for concurrent use.
type Vault struct {
	current  string                 // key id that seals
	aeads    map[string]cipher.AEAD // by key id
	order    []string               // key ids, current first
	versions map[int]string         // legacy "v<n>:" prefix → key id
}

// KeyID returns the id a key is known by in sealed values: 16 hex digits
// of SHA-256 over a fixed label and the key. It reveals nothing usable
// about the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("jabbergate vault key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// New returns a vault with keys by version; the highest version seals.
// Versions only matter to open values sealed in the old "v<version>:"
// format.
func New(keys map[int][]byte) (*Vault, error) {
	top := -1
	for ver := range keys {
		top = max(top, ver)
	}
	if top < 0 {
		return nil, errors.New("vault: no key")
	}
	v := &Vault{aeads: map[string]cipher.AEAD{}, versions: map[int]string{}}
	if err := v.add(keys[top]); err != nil {
		return nil, fmt.Errorf("vault: key version %d: %w", top, err)
	}
	v.versions[top] = v.current
	for ver, k := range keys {
		if ver == top {
			continue
		}
		if err := v.add(k); err != nil {
			return nil, fmt.Errorf("vault: key version %d: %w", ver, err)
		}
		v.versions[ver] = KeyID(k)
	}
	return v, nil
}

// NewKeys returns a vault that seals with current and opens values sealed
// with current or any of old.
func NewKeys(current []byte, old ...[]byte) (*Vault, error) {
	v := &Vault{aeads: map[string]cipher.AEAD{}, versions: map[int]string{}}
	for i, k := range append([][]byte{current}, old...) {
		if err := v.add(k); err != nil {
			if i == 0 {
				return nil, fmt.Errorf("vault: current key: %w", err)
			}
			return nil, fmt.Errorf("vault: old key %d: %w", i, err)
		}
	}
	return v, nil
}

// add adds a key; the first one added becomes current.
func (v *Vault) add(k []byte) error {
	if len(k) != KeySize {
		return fmt.Errorf("key is %d bytes, want %d", len(k), KeySize)
	}
	id := KeyID(k)
	if _, dup := v.aeads[id]; dup {
		return nil
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	v.aeads[id] = aead
	v.order = append(v.order, id)
	if v.current == "" {
		v.current = id
	}
	return nil
}

// KeyID returns the id of the key that seals.
func (v *Vault) KeyID() string { return v.current }

// Seal encrypts plaintext bound to binding.
func (v *Vault) Seal(binding, plaintext string) (string, error) {
	aead := v.aeads[v.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(binding))
	return "k" + v.current + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// SealedKeyID returns the key id a sealed value names ("" for a value in
// the old "v<version>:" format, whose key is known only by trying) and
// whether s looks like a sealed value at all.
func SealedKeyID(s string) (id string, ok bool) {
	pre, rest, found := strings.Cut(s, ":")
	if !found || len(pre) < 2 || rest == "" {
		return "", false
	}
	switch pre[0] {
	case 'k':
		if _, err := hex.DecodeString(pre[1:]); err != nil || len(pre) != 17 {
			return "", false
		}
		return pre[1:], true
	case 'v':
		if _, err := strconv.Atoi(pre[1:]); err != nil {
			return "", false
		}
		return "", true
	}
	return "", false
}

// Current reports whether sealed was sealed with the current key.
func (v *Vault) Current(sealed string) bool {
	id, ok := SealedKeyID(sealed)
	return ok && id == v.current
}

// Open decrypts a value sealed with binding.
func (v *Vault) Open(binding, sealed string) (string, error) {
	pre, rest, ok := strings.Cut(sealed, ":")
	if !ok || len(pre) < 2 {
		return "", ErrOpen
	}
	var candidates []string
	switch pre[0] {
	case 'k':
		if _, known := v.aeads[pre[1:]]; !known {
			return "", fmt.Errorf("%w: key %s unknown (an old key missing from vault.old_keys?)", ErrOpen, pre[1:])
		}
		candidates = []string{pre[1:]}
	case 'v':
		n, err := strconv.Atoi(pre[1:])
		if err != nil {
			return "", ErrOpen
		}
		if id, known := v.versions[n]; known {
			candidates = []string{id}
		} else {
			candidates = v.order
		}
	default:
		return "", ErrOpen
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", ErrOpen
	}
	for _, id := range candidates {
		aead := v.aeads[id]
		if len(raw) < aead.NonceSize() {
			return "", ErrOpen
		}
		if pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(binding)); err == nil {
			return string(pt), nil
		}
	}
	return "", ErrOpen
}

// LoadOrCreateKey reads a base64 key from path (LoadKey), creating the
// file with a new random key (CreateKey) when it does not exist. The
// directory holding it must exist: it is never created, so that a typo in
// the path is an error rather than a new key.
func LoadOrCreateKey(path string) ([]byte, error) {
	k, err := LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return CreateKey(path)
	}
	return k, err
}

// LoadKey reads a base64 key from the file path. Its errors name the file;
// a missing file is an error that errors.Is fs.ErrNotExist.
func LoadKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault: read key file: %w", err) // *fs.PathError names it
	}
	k, err := DecodeKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("vault: key file %s: %s", path, strings.TrimPrefix(err.Error(), "vault: "))
	}
	return k, nil
}

// CreateKey writes a new random key to the file path (mode 0600), which
// must not exist, in a directory that must. Its errors name the file.
func CreateKey(path string) ([]byte, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("vault: create key file %s: directory %s: %w", path, dir, errors.Unwrap(err))
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("vault: create key file %s: %s is not a directory", path, dir)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: create key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, fmt.Errorf("vault: write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("vault: write key file %s: %w", path, err)
	}
	return key, nil
}

// DecodeKey decodes a base64 key and checks its size.
func DecodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("vault: key is not base64: %w", err)
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("vault: key is %d bytes, want %d", len(k), KeySize)
	}
	return k, nil
}

// EncodeKey returns the base64 form of a key, as DecodeKey and key files
// take it.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
