package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOptionKey: the key of an adapter option as written in the file, so
// an error about "token" read from token_file points at token_file.
func TestOptionKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges:",
		"  - network: echo", // 4
		"    domain: echo.localhost",
		"    secret: s",
		"  - network: telegram",
		"    domain: tg.localhost",
		"    secret: s",
		"    options:", // 10
		"      api_url: http://x",
		"      token_file: tok", // 12
	)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i          int
		name, want string
		line       int
	}{
		{1, "api_url", "bridges[1].options.api_url", 11},
		{1, "token", "bridges[1].options.token_file", 12},
		{1, "missing", "bridges[1].options.missing", 10}, // the options block
		{0, "prefix", "bridges[0].options.prefix", 4},    // no options block: the bridge
		{7, "x", "bridges[7].options.x", 3},              // no such bridge: the list
	} {
		if k := cfg.OptionKey(c.i, c.name); k != c.want || cfg.Line(k) != c.line {
			t.Errorf("OptionKey(%d, %q) = %q line %d, want %q line %d", c.i, c.name, k, cfg.Line(k), c.want, c.line)
		}
	}
}
