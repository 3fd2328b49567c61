package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecurityKeys(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	dir := t.TempDir()
	old := filepath.Join(dir, "old.key")
	if err := os.WriteFile(old, []byte(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32)))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "t.yaml"), []byte(strings.Replace(valid, "  server: localhost:5347", "  server: localhost:5347\n  max_element_depth: 16", 1)+
		"  rate_limit: {per_second: 2.5, burst: 7}\nvault:\n  old_keys: ['"+key+"']\n  old_key_files: [old.key]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.XMPP.MaxElementDepth != 16 || c.Access.RateLimit.PerSecond != 2.5 || c.Access.RateLimit.Burst != 7 {
		t.Errorf("parsed %+v %+v", c.XMPP, c.Access.RateLimit)
	}
	if len(c.Vault.OldKeys) != 2 || c.Vault.OldKeys[0] != key || c.Vault.OldKeyFiles[0] != old {
		t.Errorf("old keys = %d, files %v", len(c.Vault.OldKeys), c.Vault.OldKeyFiles)
	}
	if out := c.Redacted(); strings.Contains(out, key) || strings.Contains(out, c.Vault.OldKeys[1]) {
		t.Errorf("Redacted shows an old key:\n%s", out)
	}

	for _, tc := range []struct{ yaml, want string }{
		{strings.Replace(valid, "  server: localhost:5347", "  server: localhost:5347\n  max_element_depth: 3", 1), "t.yaml:3: xmpp.max_element_depth: must be at least 8"},
		{strings.Replace(valid, "  server: localhost:5347", "  server: localhost:5347\n  max_element_depth: deep", 1), `t.yaml:3: xmpp.max_element_depth: invalid integer "deep"`},
		{valid + "  rate_limit: {per_second: fast}\n", `access.rate_limit.per_second: invalid number "fast"`},
		{valid + "  rate_limit: {burst: -1}\n", "access.rate_limit.burst: must not be negative"},
		{valid + "vault:\n  old_keys: [short]\n", "vault.old_keys[0]: not the base64 of 32 bytes"},
		{valid + "vault:\n  old_key_files: [/nonexistent/k]\n", "vault.old_key_files[0]"},
	} {
		_, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
