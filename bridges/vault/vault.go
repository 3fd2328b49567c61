// Package vault seals legacy credentials at rest with AES-256-GCM.
//
// A sealed value is "v<version>:" followed by base64(nonce ‖ ciphertext).
// The associated data binds a ciphertext to where it is stored (bridge, user,
// field), so a value copied into another user's record does not open. The
// version prefix names the key, so keys can be rotated: new values are
// sealed with the newest key, old ones still open with theirs.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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
	current int
	aeads   map[int]cipher.AEAD
}

// New returns a vault with keys by version; the highest version seals.
func New(keys map[int][]byte) (*Vault, error) {
	v := &Vault{aeads: map[int]cipher.AEAD{}, current: -1}
	for ver, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("vault: key version %d is %d bytes, want %d", ver, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		v.aeads[ver] = aead
		if ver > v.current {
			v.current = ver
		}
	}
	if v.current < 0 {
		return nil, errors.New("vault: no key")
	}
	return v, nil
}

// Seal encrypts plaintext bound to binding.
func (v *Vault) Seal(binding, plaintext string) (string, error) {
	aead := v.aeads[v.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := aead.Seal(nonce, nonce, []byte(plaintext), []byte(binding))
	return "v" + strconv.Itoa(v.current) + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value sealed with binding.
func (v *Vault) Open(binding, sealed string) (string, error) {
	ver, rest, ok := strings.Cut(sealed, ":")
	if !ok || !strings.HasPrefix(ver, "v") {
		return "", ErrOpen
	}
	n, err := strconv.Atoi(ver[1:])
	if err != nil {
		return "", ErrOpen
	}
	aead, ok := v.aeads[n]
	if !ok {
		return "", fmt.Errorf("%w: key version %d unknown", ErrOpen, n)
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", ErrOpen
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(binding))
	if err != nil {
		return "", ErrOpen
	}
	return string(pt), nil
}

// LoadOrCreateKey reads a base64 key from path, creating the file with a
// new random key (mode 0600) when it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return DecodeKey(strings.TrimSpace(string(data)))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("vault: read key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("vault: create key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("vault: create key file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, fmt.Errorf("vault: write key file: %w", err)
	}
	return key, f.Sync()
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
