package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: the loader never panics on any input (problems are errors),
// and Redacted never shows a secret long enough to be recognisable.
// (That errors never show secrets is tested in config_test.go: YAML syntax
// errors may quote any token of the input, such as an anchor name.)
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	if ex, err := os.ReadFile(examplePath); err == nil {
		f.Add(ex)
	}
	f.Add([]byte(valid + "vault:\n  key: 'TOPSECRETTOPSECRETTOPSECRET'\n"))
	f.Add([]byte("xmpp: &a {server: *a}\n"))
	f.Add([]byte("bridges:\n  - network: echo\n    domain: e.localhost\n    secret: '${NOPE}'\n    options: {token_file: /nonexistent}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		out := c.Redacted()
		for _, b := range c.Bridges {
			if len(b.Secret) >= 16 && strings.Contains(out, b.Secret) {
				t.Fatalf("Redacted shows a bridge secret:\n%s", out)
			}
		}
		if len(c.Vault.Key) >= 16 && strings.Contains(out, c.Vault.Key) {
			t.Fatalf("Redacted shows the vault key:\n%s", out)
		}
	})
}
