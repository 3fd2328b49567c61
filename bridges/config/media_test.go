package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMediaSection(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "media.key")
	if err := os.WriteFile(keyFile, []byte("a-media-signing-key-of-32-bytes!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "t.yaml"), []byte(valid+doc(
		"media:",
		"  base_url: https://gw.example.org/",
		"  dir: files",
		"  max_size: 5MiB",
		"  ttl: 24h",
		"  key_file: media.key",
		"  allow_private_fetch: yes",
		"  fetch_timeout: 10s",
	)))
	if err != nil {
		t.Fatal(err)
	}
	m := c.Media
	if m.BaseURL != "https://gw.example.org" || m.Dir != filepath.Join(dir, "files") || m.MaxSize != 5*MiB || m.TTL != 24*time.Hour ||
		m.Key != "a-media-signing-key-of-32-bytes!" || !m.AllowPrivateFetch || m.FetchTimeout != 10*time.Second {
		t.Errorf("media = %#v", m)
	}
	if r := c.Redacted(); strings.Contains(r, "a-media-signing-key") {
		t.Errorf("Redacted shows the media key:\n%s", r)
	}
	if s := m.String(); strings.Contains(s, "signing") {
		t.Errorf("String shows the key: %s", s)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"media: {base_url: 'ftp://x'}", "media.base_url: invalid URL"},
		{"media: {base_url: 'https://x/?a=b'}", "media.base_url: must not have"},
		{"http: {listen: 'off'}\nmedia: {base_url: 'https://x'}", "http.listen is off"},
		{"media: {key: short}", "media.key: must be at least 16 bytes"},
		{"media: {key: 0123456789abcdef, key_file: x}", "give key or key_file"},
		{"media: {allow_private_fetch: maybe}", "invalid boolean"},
		{"media: {max_size: -1}", "media.max_size: must be positive (leave it out for the default, 20MiB)"},
		{"media: {ttl: -1s}", "media.ttl: must be positive (leave it out for the default, 168h0m0s)"},
	} {
		_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(valid+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
