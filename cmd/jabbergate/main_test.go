package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/legacy"
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
	if code, _, errs := runCLI(); code != exitConfig || !strings.Contains(errs, "usage") {
		t.Errorf("no args = %d %q", code, errs)
	}
	if code, _, errs := runCLI("frobnicate"); code != exitConfig || !strings.Contains(errs, "unknown command") {
		t.Errorf("unknown command = %d %q", code, errs)
	}
	if code, _, errs := runCLI("run"); code != exitConfig || !strings.Contains(errs, "-config FILE is required") {
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

func TestConfigErrorsExitConfigWithFileLineKey(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"typo", strings.Replace(goodConfig, "    secret:", "    secert:", 1), ":6: bridges[0].secert: unknown key"},
		{"unknown network", strings.Replace(goodConfig, "network: echo", "network: pigeon", 1), "bridges[0].network"},
		{"bad echo option", goodConfig[:strings.Index(goodConfig, "access:")] + "    options:\n      prefx: x\n" + goodConfig[strings.Index(goodConfig, "access:"):], `:8: bridges[0].options.prefx: unknown option (known: prefix)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, c.body)
			for _, cmd := range []string{"check-config", "run"} {
				code, _, errs := runCLI(cmd, "-config", p)
				if code != exitConfig || !strings.Contains(errs, p) || !strings.Contains(errs, c.want) {
					t.Errorf("%s: exit %d, stderr %q; want exit 78 naming %s and %q", cmd, code, errs, p, c.want)
				}
			}
		})
	}
	code, _, errs := runCLI("run", "-config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitConfig || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing file: %d %q", code, errs)
	}
}

// withOptions is goodConfig with the echo bridge replaced by network and
// the given options lines (indented under "options:", line 7).
func withOptions(network string, options ...string) string {
	b := strings.Replace(goodConfig, "network: echo", "network: "+network, 1)
	i := strings.Index(b, "access:")
	return b[:i] + "    options:\n      " + strings.Join(options, "\n      ") + "\n" + b[i:]
}

// TestAdapterOptionErrors: an option an adapter refuses is reported like a
// core key: the file, the line of that option's key, its full key path and
// the problem without the adapter's prefix; by check-config and run alike,
// exit status 78 (exitConfig).
func TestAdapterOptionErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prefix.txt"), []byte("> \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body, want string
	}{
		{"unknown echo option", withOptions("echo", "prefix: x", "prefx: y"),
			`:9: bridges[0].options.prefx: unknown option (known: prefix)`},
		{"unknown option from a file", withOptions("echo", "prefx_file: prefix.txt"),
			`:8: bridges[0].options.prefx_file: unknown option (known: prefix)`},
		{"email poll_interval", withOptions("email", "idle: true", "poll_interval: 0s"),
			`:9: bridges[0].options.poll_interval: want a positive duration, got "0s"`},
		{"email size", withOptions("email", "max_file_size: lots"),
			`:8: bridges[0].options.max_file_size: want a positive size`},
		{"unknown telegram option", withOptions("telegram", "api_url: https://api.telegram.org", "webhook: x"),
			`:9: bridges[0].options.webhook: unknown option (known: api_url, poll_timeout, webhook_url, webhook_secret)`},
		// Starting with the name of one of the bridge's options: under it.
		{"sms problem named by its option", withOptions("sms", "max_segments: 0"),
			`:8: bridges[0].options.max_segments: max_segments "0" must be a whole number`},
		// About no option in particular: as the adapter says it, at the
		// options block.
		{"sms problem of the options as a whole", withOptions("sms", "twilio_account_sid: AC123"),
			`:7: bridges[0].options: sms: `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			wantConfigError(t, p, "\n"+p+c.want)
		})
	}
}

// TestOptionErrorsTyped: a *legacy.OptionError, alone, wrapped or joined
// with others, is reported at its option's line and key with its problem
// as is; untyped members of a join are reported on their own.
func TestOptionErrorsTyped(t *testing.T) {
	p := writeConfig(t, withOptions("echo", "prefix: x", "secret_token_file: tok"))
	if err := os.WriteFile(filepath.Join(filepath.Dir(p), "tok"), []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	prefix := &legacy.OptionError{Option: "prefix", Problem: "too long"}
	token := &legacy.OptionError{Option: "secret_token", Problem: "too short"}
	whole := &legacy.OptionError{Problem: "give a or b"}
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"bare", prefix, []string{p + ":8: bridges[0].options.prefix: too long"}},
		{"wrapped", fmt.Errorf("echo: %w", prefix), []string{p + ":8: bridges[0].options.prefix: too long"}},
		{"from a file", token, []string{p + ":9: bridges[0].options.secret_token_file: too short"}},
		{"not set", &legacy.OptionError{Option: "public_url", Problem: "required"}, []string{p + ":7: bridges[0].options.public_url: required"}},
		{"whole block", fmt.Errorf("sms: %w", whole), []string{p + ":7: bridges[0].options: give a or b"}},
		{"joined", errors.Join(fmt.Errorf("echo: %w", errors.Join(prefix, token)), errors.New("echo: something else")), []string{
			p + ":8: bridges[0].options.prefix: too long",
			p + ":9: bridges[0].options.secret_token_file: too short",
			p + ":7: bridges[0].options: echo: something else",
		}},
	}
	for _, c := range cases {
		var got []string
		for _, e := range optionErrors(p, cfg, 0, c.err) {
			got = append(got, e.Error())
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s:\n got: %q\nwant: %q", c.name, got, c.want)
		}
	}
}

func TestParseOptionError(t *testing.T) {
	cases := []struct {
		msg, name, problem string
	}{
		{`echo: unknown option "prefx" (known: prefix)`, "prefx", "unknown option (known: prefix)"},
		{`unknown option "a \"b\""`, `a "b"`, "unknown option"},
		{`legacy: sms: unknown option "x.y-z" (known: routes)`, "x.y-z", "unknown option (known: routes)"},
		{`email: option poll_interval: want a positive duration, got "0s"`, "poll_interval", `want a positive duration, got "0s"`},
		{`email: option idle: strconv.ParseBool: parsing "x": invalid syntax`, "idle", `strconv.ParseBool: parsing "x": invalid syntax`},
		{`option "odd name": bad`, "odd name", "bad"},
		{"x: option a: two\nlines", "a", "two\nlines"},
		{`sms: max_segments "0" must be a whole number`, "", ""},
		{`sms: give both twilio_account_sid and twilio_auth_token`, "", ""},
		{`telegram: webhook_url needs a webhook_secret of at least 16 characters`, "", ""},
		{`email: options are: none`, "", ""},
		{`echo: unknown option ""`, "", ""},
		{`unknown option prefx`, "", ""},
	}
	for _, c := range cases {
		name, problem, ok := parseOptionError(c.msg)
		if ok != (c.name != "") || name != c.name || problem != c.problem {
			t.Errorf("parseOptionError(%q) = %q, %q, %v; want %q, %q", c.msg, name, problem, ok, c.name, c.problem)
		}
	}
}

// TestStorePathErrors: a store.path run cannot open is refused by
// check-config (systemd's ExecStartPre) and by run with exit status 78 (exitConfig), at
// the line of store.path, instead of run failing with status 1 and systemd
// restarting it forever.
func TestStorePathErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	store := func(backend, path string) string {
		return goodConfig + "store:\n  backend: " + backend + "\n  path: " + path + "\n" // store.path on line 11
	}
	cases := []struct {
		name, body, want string
	}{
		{"bolt on a directory", store("bolt", "adir"),
			fmt.Sprintf(`:11: store.path: %q is a directory, but the bolt backend keeps its data in one file`, filepath.Join(dir, "adir"))},
		{"bolt without its directory", store("bolt", "nope/jg.db"),
			fmt.Sprintf(`:11: store.path: directory %q does not exist`, filepath.Join(dir, "nope"))},
		{"pebble without its parent", store("pebble", "nope/jg.pebble"),
			fmt.Sprintf(`:11: store.path: directory %q does not exist`, filepath.Join(dir, "nope"))},
	}
	p := filepath.Join(dir, "c.yaml")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			wantConfigError(t, p, "\n"+p+c.want)
		})
	}
	// With an option error too: both, in line order.
	body := withOptions("echo", "prefx: y") + "store:\n  path: adir\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("check-config", "-config", p)
	i, j := strings.Index(errs, p+":8: bridges[0].options.prefx:"), strings.Index(errs, p+":12: store.path:")
	if code != exitConfig || i < 0 || j < i {
		t.Errorf("two problems: exit %d, stderr:\n%s", code, errs)
	}
	// A good path still passes; the bolt file and pebble directory are
	// created by run, not by check-config.
	for _, body := range []string{store("bolt", "adir/jg.db"), store("pebble", "adir/jg.pebble")} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errs := runCLI("check-config", "-config", p); code != 0 {
			t.Errorf("check-config %q = %d %s", body, code, errs)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "adir")); len(ents) != 0 {
		t.Errorf("check-config created %v", ents)
	}
}

// An adapter error that starts with the name of one of the bridge's
// options, in no known wording, is reported under that option.
func TestNamedOption(t *testing.T) {
	opts := map[string]string{"max_segments": "abc", "max": "1", "public_url": "ftp://x"}
	for _, c := range []struct {
		msg, name, problem string
	}{
		{`sms: max_segments "abc" must be a whole number`, "max_segments", `max_segments "abc" must be a whole number`},
		{`telegram: public_url "ftp://x" is not an http(s) URL`, "public_url", `public_url "ftp://x" is not an http(s) URL`},
		{`sms: give both twilio_account_sid and twilio_auth_token`, "", ""},
	} {
		name, problem, ok := namedOption(c.msg, opts)
		if name != c.name || problem != c.problem || ok != (c.name != "") {
			t.Errorf("namedOption(%q) = %q, %q, %v", c.msg, name, problem, ok)
		}
	}
}

// wantConfigError runs check-config and run on the config file p: both
// must exit 78 with want in their stderr.
func wantConfigError(t *testing.T, p, want string) {
	t.Helper()
	for _, cmd := range []string{"check-config", "run"} {
		if code, _, errs := runCLI(cmd, "-config", p); code != exitConfig || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 78 and %q", cmd, code, errs, want)
		}
	}
}

// A vault.key_file that exists but holds no key is refused by check-config
// and run alike, at its line; a missing one is fine (run creates it).
func TestVaultKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw.key")
	if err := os.WriteFile(raw, []byte{0xff, 0x00, 0x13, 0x37}, 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "c.yaml")
	body := goodConfig + "vault:\n  key_file: raw.key\n" // vault.key_file on line 10
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	wantConfigError(t, p, fmt.Sprintf("\n%s:10: vault.key_file: %s: key is not base64", p, raw))
	body = goodConfig + "vault:\n  key_file: made-at-run.key\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("check-config", "-config", p); code != 0 {
		t.Errorf("missing key file: exit %d, stderr:\n%s", code, errs)
	}
}

// An option read from a file that cannot be read does not hide the other
// problems of the config: the adapter's own option errors are reported
// with it, at once, and none about the unread option's value.
func TestUnreadOptionFileHidesNothing(t *testing.T) {
	p := writeConfig(t, withOptions("sms", "max_segments: 0", "smpp_password_file: /nonexistent/x", "routez: x"))
	for _, want := range []string{
		p + `:8: bridges[0].options.max_segments: max_segments "0" must be a whole number`,
		p + `:9: bridges[0].options.smpp_password_file: cannot read "/nonexistent/x"`,
		p + `:10: bridges[0].options.routez: unknown option`,
	} {
		wantConfigError(t, p, want)
	}
	for _, cmd := range []string{"check-config", "run"} {
		if _, _, errs := runCLI(cmd, "-config", p); strings.Count(errs, "options.smpp_password") != 1 {
			t.Errorf("%s: the unread option is reported more than once:\n%s", cmd, errs)
		}
	}
}
