package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jabbergate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodConfig = `xmpp:
  server: 127.0.0.1:5347
bridges:
  - network: echo
    domain: echo.localhost
    secret: very-secret-value
access:
  allowed_domains: [localhost]
`

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.Contains(out, "jabbergate") || !strings.Contains(out, "echo") {
		t.Errorf("version = %d %q", code, out)
	}
	if code, _, errs := runCLI(); code != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("no args = %d %q", code, errs)
	}
	if code, _, errs := runCLI("frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command = %d %q", code, errs)
	}
	if code, _, errs := runCLI("run"); code != 2 || !strings.Contains(errs, "-config FILE is required") {
		t.Errorf("run without config = %d %q", code, errs)
	}
}

func TestCheckConfig(t *testing.T) {
	p := writeConfig(t, goodConfig)
	code, out, errs := runCLI("check-config", "-config", p)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check-config = %d %q %q", code, out, errs)
	}
	if strings.Contains(out, "very-secret-value") {
		t.Errorf("check-config prints the secret:\n%s", out)
	}
	// The limits in force, not zeros that look like "off".
	for _, want := range []string{"max_element_depth: 32", "per_second: 20", "burst: 200"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	if config.DefaultRatePerSecond != bridges.DefaultRateLimit || config.DefaultRateBurst != bridges.DefaultRateBurst {
		t.Errorf("config's rate-limit defaults %v/%v differ from the bridge's %v/%v",
			config.DefaultRatePerSecond, config.DefaultRateBurst, bridges.DefaultRateLimit, bridges.DefaultRateBurst)
	}
}

func TestConfigErrorsExit2WithFileLineKey(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"typo", strings.Replace(goodConfig, "    secret:", "    secert:", 1), ":6: bridges[0].secert: unknown key"},
		{"unknown network", strings.Replace(goodConfig, "network: echo", "network: pigeon", 1), "bridges[0].network"},
		{"bad echo option", goodConfig[:strings.Index(goodConfig, "access:")] + "    options:\n      prefx: x\n" + goodConfig[strings.Index(goodConfig, "access:"):], `echo: unknown option "prefx"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, c.body)
			for _, cmd := range []string{"check-config", "run"} {
				code, _, errs := runCLI(cmd, "-config", p)
				if code != 2 || !strings.Contains(errs, p) || !strings.Contains(errs, c.want) {
					t.Errorf("%s: exit %d, stderr %q; want exit 2 naming %s and %q", cmd, code, errs, p, c.want)
				}
			}
		})
	}
	code, _, errs := runCLI("run", "-config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 2 || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}
