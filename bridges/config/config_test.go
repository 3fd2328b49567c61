package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// doc joins lines with newlines, so a test can count lines.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// valid is a minimal valid configuration.
var valid = doc(
	"xmpp:",                          // 1
	"  server: localhost:5347",       // 2
	"bridges:",                       // 3
	"  - network: echo",              // 4
	"    domain: echo.localhost",     // 5
	"    secret: s3cret",             // 6
	"access:",                        // 7
	"  allowed_domains: [localhost]", // 8
)

// errStrings returns the messages of every *Error in err.
func errStrings(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range Errors(err) {
		out = append(out, e.Error())
	}
	return out
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{
			name: "typo key",
			yaml: doc(
				"xmpp:",
				"  server: localhost:5347",
				"bridges:",
				"  - network: echo",
				"    domain: echo.localhost",
				"    name: Echo",
				"    secert: s3cret",
				"access:",
				"  allowed_domains: [localhost]",
			),
			want: []string{
				`t.yaml:4: bridges[0].secret: required: the component's shared secret (or give secret_file)`,
				`t.yaml:7: bridges[0].secert: unknown key (did you mean "secret"?)`,
			},
		},
		{
			name: "unknown key without suggestion",
			yaml: valid + "colour: blue\n",
			want: []string{`t.yaml:9: colour: unknown key (known keys: xmpp, bridges, store, http, access, log, vault, media, cluster)`},
		},
		{
			name: "typo in nested section",
			yaml: valid + "store:\n  redis:\n    prefx: jg\n",
			want: []string{`t.yaml:11: store.redis.prefx: unknown key (did you mean "prefix"?)`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{
				`t.yaml: xmpp.server: required: the XMPP server's component listener, host:port`,
				`t.yaml: bridges: required: at least one bridge`,
				`t.yaml: access.allowed_domains: required: the user domains allowed to register, or "*" for any domain`,
			},
		},
		{
			name: "missing keys in sections",
			yaml: doc(
				"xmpp:",
				"  ping_interval: 10s",
				"bridges:",
				"  - name: Echo",
				"access:",
				"  admins: [admin@localhost]",
			),
			want: []string{
				`t.yaml:1: xmpp.server: required: the XMPP server's component listener, host:port`,
				`t.yaml:4: bridges[0].network: required: allowed: echo, email, sms, telegram`,
				`t.yaml:4: bridges[0].domain: required: the component domain, e.g. telegram.example.org`,
				`t.yaml:4: bridges[0].secret: required: the component's shared secret (or give secret_file)`,
				`t.yaml:5: access.allowed_domains: required: the user domains allowed to register, or "*" for any domain`,
			},
		},
		{
			name: "xmpp.server not required when every bridge has one",
			yaml: strings.Replace(strings.Replace(valid, "  server: localhost:5347", "  ping_timeout: 5s", 1),
				"    secret: s3cret", "    secret: s3cret\n    server: 127.0.0.1:5347", 1),
		},
		{
			name: "bad enums",
			yaml: valid + doc(
				"store:",
				"  backend: postgres",
				"log:",
				"  level: verbose",
				"  format: xml",
			),
			want: []string{
				`t.yaml:10: store.backend: invalid value "postgres" (allowed: bolt, pebble, redis)`,
				`t.yaml:12: log.level: invalid value "verbose" (allowed: debug, info, warn, error)`,
				`t.yaml:13: log.format: invalid value "xml" (allowed: text, json)`,
			},
		},
		{
			name: "unknown network",
			yaml: strings.Replace(valid, "network: echo", "network: Echo", 1),
			want: []string{`t.yaml:4: bridges[0].network: unknown network "Echo" (allowed: echo, email, sms, telegram)`},
		},
		{
			name: "bad addresses",
			yaml: doc(
				"xmpp:",
				"  server: localhost",
				"bridges:",
				"  - network: echo",
				"    domain: echo.localhost",
				"    secret: s3cret",
				"    server: localhost:99999",
				"  - network: echo",
				"    domain: echo2.localhost",
				"    secret: s3cret",
				"    server: :5347",
				"access:",
				"  allowed_domains: [localhost]",
				"http:",
				"  listen: 9470",
			),
			want: []string{
				`t.yaml:2: xmpp.server: invalid address "localhost": missing port in address (want host:port)`,
				`t.yaml:7: bridges[0].server: invalid address "localhost:99999": port must be a number from 1 to 65535`,
				`t.yaml:11: bridges[1].server: invalid address ":5347": missing host (want host:port)`,
				`t.yaml:15: http.listen: invalid address "9470": missing port in address (want host:port) (or "off")`,
			},
		},
		{
			name: "duplicate bridge domains",
			yaml: doc(
				"xmpp:",
				"  server: localhost:5347",
				"bridges:",
				"  - network: echo",
				"    domain: echo.localhost",
				"    secret: s3cret",
				"  - network: echo",
				"    domain: ECHO.localhost",
				"    secret: other",
				"access:",
				"  allowed_domains: [localhost]",
			),
			want: []string{`t.yaml:8: bridges[1].domain: duplicate domain "echo.localhost" (also bridges[0] at line 5)`},
		},
		{
			name: "invalid domains",
			yaml: doc(
				"xmpp:",
				"  server: localhost:5347",
				"bridges:",
				"  - network: echo",
				"    domain: echo_bot.localhost",
				"    secret: s3cret",
				"  - network: echo",
				"    domain: -echo.localhost",
				"    secret: s3cret",
				"  - network: echo",
				"    domain: 127.0.0.1",
				"    secret: s3cret",
				"  - network: echo",
				"    domain: echo..localhost",
				"    secret: s3cret",
				"access:",
				"  allowed_domains: ['*', 'exa mple.org']",
				"  admins: [admin@localhost, localhost, 'a@b/c']",
			),
			want: []string{
				`t.yaml:5: bridges[0].domain: invalid domain "echo_bot.localhost": character '_' not allowed (letters, digits, '-' and '.'; write internationalized names as xn--…)`,
				`t.yaml:8: bridges[1].domain: invalid domain "-echo.localhost": a label starts or ends with '-'`,
				`t.yaml:11: bridges[2].domain: invalid domain "127.0.0.1": an IP address, not a domain name`,
				`t.yaml:14: bridges[3].domain: invalid domain "echo..localhost": empty label`,
				`t.yaml:17: access.allowed_domains[1]: invalid domain "exa mple.org": character ' ' not allowed (letters, digits, '-' and '.'; write internationalized names as xn--…)`,
				`t.yaml:18: access.admins[1]: invalid bare JID "localhost": want user@domain`,
				`t.yaml:18: access.admins[2]: invalid bare JID "a@b/c": has a resource; give a bare JID, user@domain`,
			},
		},
		{
			name: "durations and sizes",
			yaml: doc(
				"xmpp:",
				"  server: localhost:5347",
				"  ping_interval: -5s",
				"  ping_timeout: 30",
				"  max_stanza_size: 1KiB",
			) + valid[len("xmpp:\n  server: localhost:5347\n"):],
			want: []string{
				`t.yaml:3: xmpp.ping_interval: must be positive (leave it out for the default, 30s)`,
				`t.yaml:4: xmpp.ping_timeout: invalid duration "30" (want a number with a unit, e.g. "30s", "1m30s")`,
				`t.yaml:5: xmpp.max_stanza_size: must be at least 10000 bytes (RFC 6120 §13.12; leave it out for the default, 256KiB)`,
			},
		},
		{
			// An explicit zero is refused like ping_interval: 0s, not
			// taken as the default.
			name: "explicit zeros",
			yaml: doc(
				"xmpp:",
				"  server: localhost:5347",
				"  max_element_depth: 0",
				"  max_stanza_size: 0",
			) + valid[len("xmpp:\n  server: localhost:5347\n"):] + doc(
				"media:",
				"  ttl: 0s",
				"  max_size: 0",
				"  fetch_timeout: 0s",
			),
			want: []string{
				`t.yaml:3: xmpp.max_element_depth: must be at least 8 (leave it out for the default, 32)`,
				`t.yaml:4: xmpp.max_stanza_size: must be at least 10000 bytes (RFC 6120 §13.12; leave it out for the default, 256KiB)`,
				`t.yaml:12: media.ttl: must be positive (leave it out for the default, 168h0m0s)`,
				`t.yaml:13: media.max_size: must be positive (leave it out for the default, 20MiB)`,
				`t.yaml:14: media.fetch_timeout: must be positive (leave it out for the default, 1m0s)`,
			},
		},
		{
			name: "duplicate section",
			yaml: valid + "xmpp:\n  max_stanza_size: lots\n",
			want: []string{
				`t.yaml:9: xmpp: duplicate key (first at line 1)`,
			},
		},
		{
			name: "bad size",
			yaml: strings.Replace(valid, "  server: localhost:5347", "  server: localhost:5347\n  max_stanza_size: lots", 1),
			want: []string{`t.yaml:3: xmpp.max_stanza_size: invalid size "lots" (want bytes, or a number with KiB, MiB, GiB, KB, MB or GB)`},
		},
		{
			name: "negative size",
			yaml: strings.Replace(valid, "  server: localhost:5347", "  server: localhost:5347\n  max_stanza_size: -1MiB", 1),
			want: []string{`t.yaml:3: xmpp.max_stanza_size: must be at least 10000 bytes (RFC 6120 §13.12; leave it out for the default, 256KiB)`},
		},
		{
			name: "redis without url or key",
			yaml: valid + "store:\n  backend: redis\n",
			want: []string{
				`t.yaml:9: store.redis.url: required: when store.backend is redis (or give url_file)`,
				`t.yaml:10: vault.key: required: with store.backend redis every instance must share one key: set vault.key or vault.key_file`,
			},
		},
		{
			name: "redis url schemes",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: http://user:hunter2@localhost:6379",
				"vault:",
				"  key_file: /etc/jabbergate/key",
			),
			want: []string{`t.yaml:12: store.redis.url: unknown scheme "http" (want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)`},
		},
		{
			name: "redis url without scheme",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: localhost:6379",
				"    prefix: '{jg}'",
				"vault:",
				"  key_file: /etc/jabbergate/key",
			),
			want: []string{
				`t.yaml:12: store.redis.url: missing scheme (want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)`,
				`t.yaml:13: store.redis.prefix: must not contain braces or white space (keys are hash-tagged per account)`,
			},
		},
		{
			name: "redis cluster and sentinel",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: redis+cluster://a:6379,b:6379,[::1]:6380",
				"vault:",
				"  key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			),
		},
		{
			name: "redis sentinel",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: rediss+sentinel://a:26379,b/mymaster?sentinel_password=x",
				"vault:",
				"  key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			),
		},
		{
			name: "redis address list without cluster or sentinel",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: redis://a:6379,b:6379",
				"vault:",
				"  key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			),
			want: []string{`t.yaml:12: store.redis.url: a list of addresses needs redis+cluster://host1:port,host2:port (Cluster) or redis+sentinel://host1:port,host2:port/master (Sentinel)`},
		},
		{
			name: "redis url the store cannot parse",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: redis://user:pw@127.0.0.1:notaport/0",
				"vault:",
				"  key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			),
			want: []string{`t.yaml:12: store.redis.url: invalid port ":notaport" after host`},
		},
		{
			name: "redis url with an unknown option",
			yaml: valid + doc(
				"store:",
				"  backend: redis",
				"  redis:",
				"    url: redis://127.0.0.1:6379?foo=bar",
				"vault:",
				"  key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
			),
			want: []string{`t.yaml:12: store.redis.url: redis: unexpected option: foo`},
		},
		{
			name: "zero and out-of-range limits",
			yaml: strings.Replace(strings.Replace(valid, "secret: s3cret", "secret: s3cret\n    inbox_limit: -7", 1), "server: localhost:5347", "server: localhost:5347\n  ping_interval: 0s", 1),
			want: []string{
				`t.yaml:3: xmpp.ping_interval: must be positive (leave it out for the default, 30s)`,
				`t.yaml:8: bridges[0].inbox_limit: want a positive number of events, or -1 for no limit (leave it out for the default, 10000)`,
			},
		},
		{
			name: "unset variable",
			yaml: strings.Replace(valid, "secret: s3cret", "secret: ${JG_TEST_UNSET}", 1),
			want: []string{`t.yaml:6: bridges[0].secret: environment variable "JG_TEST_UNSET" is not set (use ${JG_TEST_UNSET:-default} for a default)`},
		},
		{
			name: "bad variable references",
			yaml: strings.Replace(valid, "secret: s3cret", "secret: pa${ss", 1) + "log:\n  level: ${1X}\n",
			want: []string{
				`t.yaml:6: bridges[0].secret: unterminated "${" (write "$$" for a literal dollar sign)`,
				`t.yaml:10: log.level: invalid variable reference in "${...}": a name is letters, digits and '_' (write "$$" for a literal dollar sign)`,
			},
		},
		{
			name: "wrong node kinds",
			yaml: doc(
				"xmpp: [localhost:5347]",
				"bridges: echo",
				"access:",
				"  allowed_domains: localhost",
				"  admins:",
				"    - {jid: admin@localhost}",
			),
			want: []string{
				`t.yaml:1: xmpp: expected a mapping, got a list`,
				`t.yaml:2: bridges: expected a list, got a scalar`,
				`t.yaml:4: access.allowed_domains: expected a list, got a scalar`,
				`t.yaml:6: access.admins[0]: expected a single value, got a mapping`,
			},
		},
		{
			name: "top level not a mapping",
			yaml: "- a\n- b\n",
			want: []string{
				`t.yaml:1: expected a mapping, got a list`,
				`t.yaml: xmpp.server: required: the XMPP server's component listener, host:port`,
				`t.yaml: bridges: required: at least one bridge`,
				`t.yaml: access.allowed_domains: required: the user domains allowed to register, or "*" for any domain`,
			},
		},
		{
			name: "duplicate key",
			yaml: strings.Replace(valid, "    secret: s3cret", "    secret: s3cret\n    domain: again.localhost", 1),
			want: []string{`t.yaml:7: bridges[0].domain: duplicate key (first at line 5)`},
		},
		{
			name: "syntax error",
			yaml: doc("xmpp:", "  server: a", "bridges:", "  - network: echo", "    domain: x: y"),
			want: []string{`t.yaml:5: invalid YAML: mapping values are not allowed in this context`},
		},
		{
			name: "two documents",
			yaml: valid + "---\nxmpp: {}\n",
			want: []string{`t.yaml:9: more than one YAML document; a config file holds exactly one`},
		},
		{
			name: "secret and secret_file",
			yaml: strings.Replace(valid, "    secret: s3cret", "    secret: s3cret\n    secret_file: /run/secrets/x", 1),
			want: []string{`t.yaml:7: bridges[0].secret_file: give secret or secret_file, not both`},
		},
		{
			name: "option and option_file",
			yaml: doc(
				"xmpp: {server: 'localhost:5347'}",
				"access: {allowed_domains: [localhost]}",
				"bridges:",
				"  - network: echo",
				"    domain: two.localhost",
				"    secret: s3cret",
				"    options:",
				"      token: abc",
				"      token_file: /run/secrets/x",
				"      _file: /run/secrets/y",
				"      path_file: ''",
			),
			want: []string{
				`t.yaml:9: bridges[0].options.token_file: give token or token_file, not both`,
				`t.yaml:10: bridges[0].options._file: option name missing before "_file"`,
				`t.yaml:11: bridges[0].options.path_file: required: a file name`,
			},
		},
		{
			name: "vault keys",
			yaml: valid + "vault:\n  key: not*base64\n",
			want: []string{`t.yaml:10: vault.key: not valid base64 (create one with: openssl rand -base64 32)`},
		},
		{
			name: "vault key length",
			yaml: valid + "vault:\n  key: AAAA\n",
			want: []string{`t.yaml:10: vault.key: must be 32 bytes, got 3 (create one with: openssl rand -base64 32)`},
		},
		{
			name: "vault key and key_file",
			yaml: valid + "vault:\n  key: ${JG_TEST_KEY}\n  key_file: k\n",
			env:  map[string]string{"JG_TEST_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
			want: []string{`t.yaml:11: vault.key_file: give key or key_file, not both`},
		},
		{
			name: "http off",
			yaml: valid + "http:\n  listen: off\n",
		},
		{
			name: "null sections",
			yaml: valid + "store:\nlog:\nvault:\nhttp: ~\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := Parse("t.yaml", []byte(tt.yaml))
			got := errStrings(t, err)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
			if len(tt.want) > 0 {
				if c != nil {
					t.Errorf("config returned with errors")
				}
				if len(tt.want) > 1 && err.Error() != strings.Join(tt.want, "\n") {
					t.Errorf("joined message:\n%s", err)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("errors.As(*Error) failed")
				}
			} else if c == nil {
				t.Fatalf("nil config")
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": "", "B_2": "b"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x-${A}-${B_2}-y", want: "x-alpha-b-y"},
		{in: "${UNSET:-def}", want: "def"},
		{in: "${EMPTY:-def}", want: "def"},
		{in: "${A:-def}", want: "alpha"},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-}", want: ""},
		{in: "${UNSET:-a:-b}", want: "a:-b"},
		{in: "$${A}", want: "${A}"},
		{in: "cost: $$5", want: "cost: $5"},
		{in: "a$b$", want: "a$b$"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$$$${A}", want: "$$alpha"},
		{in: "${UNSET}", err: `environment variable "UNSET" is not set (use ${UNSET:-default} for a default)`},
		{in: "${A", err: `unterminated "${" (write "$$" for a literal dollar sign)`},
		{in: "${}", err: `invalid variable reference in "${...}": a name is letters, digits and '_' (write "$$" for a literal dollar sign)`},
		{in: "${A B}", err: `invalid variable reference in "${...}": a name is letters, digits and '_' (write "$$" for a literal dollar sign)`},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("expand(%q) error = %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("JG_T_SERVER", "xmpp.internal:5347")
	t.Setenv("JG_T_SECRET", "from-env")
	t.Setenv("JG_T_EMPTY", "")
	c, err := Parse("t.yaml", []byte(doc(
		"# ${NOT_EXPANDED} in a comment",
		"xmpp:",
		"  server: ${JG_T_SERVER}",
		"  ping_interval: ${JG_T_UNSET_PING:-10s}",
		"bridges:",
		"  - network: echo",
		"    domain: ${JG_T_EMPTY:-echo}.localhost",
		"    secret: ${JG_T_SECRET}",
		"    name: 'Pay $$5'",
		"    options:",
		"      greeting: hi ${JG_T_SECRET}",
		"      ${KEY}: kept",
		"access:",
		"  allowed_domains: ['${JG_T_UNSET_DOM:-*}']",
	)))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bridges[0]
	if c.XMPP.Server != "xmpp.internal:5347" || c.XMPP.PingInterval != 10*time.Second ||
		b.Domain != "echo.localhost" || b.Secret != "from-env" || b.Name != "Pay $5" ||
		b.Options["greeting"] != "hi from-env" || b.Options["${KEY}"] != "kept" ||
		!slices.Equal(c.Access.AllowedDomains, []string{"*"}) {
		t.Errorf("got %+v / %q / %v", c.XMPP, []string{b.Domain, b.Secret, b.Name}, b.Options)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets/component", "file-secret\n")
	write("secrets/token", "tok en\r\n\n")
	write("redis-url", "rediss://:pw@redis:6380/1\n")
	abs := filepath.Join(dir, "secrets", "abs")
	write("secrets/abs", "abs-secret")
	t.Setenv("JG_T_ABS", abs)
	c, err := Parse(filepath.Join(dir, "c.yaml"), []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges:",
		"  - network: telegram",
		"    domain: tg.localhost",
		"    secret_file: secrets/component",
		"    options:",
		"      bot_token_file: secrets/token",
		"      api_id: '123'",
		"  - network: echo",
		"    domain: echo.localhost",
		"    secret_file: ${JG_T_ABS}",
		"store:",
		"  backend: redis",
		"  redis:",
		"    url_file: redis-url",
		"vault:",
		"  key_file: keys/jg.key",
	)))
	if err != nil {
		t.Fatal(err)
	}
	tg, echo := c.Bridges[0], c.Bridges[1]
	if tg.Secret != "file-secret" || tg.SecretFile != filepath.Join(dir, "secrets/component") {
		t.Errorf("secret_file: %q from %q", tg.Secret, tg.SecretFile)
	}
	if want := map[string]string{"bot_token": "tok en", "api_id": "123"}; !reflect.DeepEqual(tg.Options, want) {
		t.Errorf("options = %q, want %q", tg.Options, want)
	}
	if echo.Secret != "abs-secret" || echo.SecretFile != abs {
		t.Errorf("absolute secret_file: %q from %q", echo.Secret, echo.SecretFile)
	}
	if c.Store.Redis.URL != "rediss://:pw@redis:6380/1" || c.Store.Redis.URLFile != filepath.Join(dir, "redis-url") {
		t.Errorf("url_file: %q from %q", c.Store.Redis.URL, c.Store.Redis.URLFile)
	}
	if c.Vault.KeyFile != filepath.Join(dir, "keys/jg.key") || c.Vault.Key != "" {
		t.Errorf("vault = %q %q", c.Vault.Key, c.Vault.KeyFile)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	const secret = "TOPSECRET-d41d8cd98f"
	for name, content := range map[string]string{
		"empty":     "\n",
		"bad-url":   "http://user:" + secret + "@redis:6379\n",
		"opaque":    secret + "://x\n",
		"component": secret,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := filepath.Join(dir, "c.yaml")
	_, err := Parse(name, []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges:",
		"  - network: echo",
		"    domain: echo.localhost",
		"    secret_file: missing",
		"  - network: echo",
		"    domain: two.localhost",
		"    secret_file: empty",
		"    options:",
		"      token_file: missing",
		"store:",
		"  backend: redis",
		"  redis:",
		"    url_file: bad-url",
		"vault: {key_file: k}",
	)))
	want := []string{
		fmt.Sprintf(`%s:6: bridges[0].secret_file: cannot read %q: no such file or directory`, name, filepath.Join(dir, "missing")),
		fmt.Sprintf(`%s:9: bridges[1].secret_file: file %q is empty`, name, filepath.Join(dir, "empty")),
		fmt.Sprintf(`%s:11: bridges[1].options.token_file: cannot read %q: no such file or directory`, name, filepath.Join(dir, "missing")),
		fmt.Sprintf(`%s:15: store.redis.url_file: file %q: unknown scheme (want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)`, name, filepath.Join(dir, "bad-url")),
	}
	if got := errStrings(t, err); !slices.Equal(got, want) {
		t.Fatalf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}

	// A scheme that is not a plain word is not quoted either.
	_, err = Parse(name, []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges: [{network: echo, domain: e.localhost, secret: x}]",
		"store: {backend: redis, redis: {url: 'a b://x'}}",
		"vault: {key: 'AAAA'}",
	)))
	if got := err.Error(); strings.Contains(got, "a b") || !strings.Contains(got, "unknown scheme (want") {
		t.Errorf("error = %s", got)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks a secret")
	}
	// The whole file's content never appears, whatever goes wrong.
	_, err = Parse(name, []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges: [{network: echo, domain: e.localhost, secret_file: component}]",
		"store: {backend: redis, redis: {url_file: opaque}}",
		"vault: {key: '"+secret+"'}",
	)))
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("error = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		XMPP: XMPP{
			Server:          "localhost:5347",
			MaxStanzaSize:   256 * KiB,
			MaxElementDepth: 32,
			PingInterval:    30 * time.Second,
			PingTimeout:     30 * time.Second,
		},
		Bridges: []Bridge{{Network: "echo", Domain: "echo.localhost", Secret: "s3cret", Server: "localhost:5347", InboxLimit: DefaultInboxLimit}},
		Store:   Store{Backend: "bolt", Path: "jabbergate.db", Redis: Redis{Prefix: "jg"}},
		HTTP:    HTTP{Listen: "127.0.0.1:9470"},
		Access:  Access{AllowedDomains: []string{"localhost"}, RateLimit: RateLimit{PerSecond: 20, Burst: 200}},
		Log:     Log{Level: "info", Format: "text"},
		Vault:   Vault{KeyFile: "jabbergate.key"},
		Media:   Media{Dir: "media", MaxSize: 20 * MiB, TTL: 7 * 24 * time.Hour, FetchTimeout: time.Minute},
		Cluster: Cluster{LeaseTTL: 15 * time.Second},
		lines:   c.lines,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", *c, *want)
		t.Errorf("got:\n%s\nwant:\n%s", c.Redacted(), want.Redacted())
	}

	// Explicit values win; "off" disables HTTP; case is normalized.
	c, err = Parse("t.yaml", []byte(valid+doc(
		"http: {listen: 'OFF'}",
		"log: {level: DEBUG, format: json}",
		"store: {backend: Redis, redis: {url: 'unix:///run/redis.sock', prefix: prod}}",
		"vault: {key: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='}",
	)))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "" || c.Log.Level != "debug" || c.Log.Format != "json" ||
		c.Store.Backend != "redis" || c.Store.Redis.Prefix != "prod" || c.Vault.KeyFile != "" {
		t.Errorf("got %+v %+v %+v %v", c.HTTP, c.Log, c.Store, c.Vault)
	}
}

func TestStorePath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		store, wantPath, wantKey string
	}{
		{"", filepath.Join(dir, "jabbergate.db"), filepath.Join(dir, "jabbergate.key")},
		{"store: {path: data/jg.db}", filepath.Join(dir, "data/jg.db"), filepath.Join(dir, "data/jabbergate.key")},
		{"store: {path: ../up.db}", filepath.Join(filepath.Dir(dir), "up.db"), filepath.Join(filepath.Dir(dir), "jabbergate.key")},
		{"store: {path: /var/lib/jg/jg.db}", "/var/lib/jg/jg.db", "/var/lib/jg/jabbergate.key"},
		{"store: {path: /var/lib/jg/jg.db}\nvault: {key_file: my.key}", "/var/lib/jg/jg.db", filepath.Join(dir, "my.key")},
		{"store: {backend: pebble}", filepath.Join(dir, "jabbergate.pebble"), filepath.Join(dir, "jabbergate.key")},
		{"store: {backend: pebble, path: /var/lib/jg/state}", "/var/lib/jg/state", "/var/lib/jg/jabbergate.key"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, "jabbergate.yaml")
		if err := os.WriteFile(path, []byte(valid+tt.store+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Store.Path != tt.wantPath || c.Vault.KeyFile != tt.wantKey {
			t.Errorf("%q: path %q key %q; want %q %q", tt.store, c.Store.Path, c.Vault.KeyFile, tt.wantPath, tt.wantKey)
		}
	}

	// Load resolves against the file's directory even when given a
	// relative path.
	t.Chdir(dir)
	if err := os.Mkdir("sub", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("sub/c.yaml", []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("sub/c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sub", "jabbergate.db"); c.Store.Path != want {
		t.Errorf("path = %q, want %q", c.Store.Path, want)
	}
	_, err = Load("sub/missing.yaml")
	if err == nil || err.Error() != "sub/missing.yaml: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

// TestPebblePath: the pebble store is a directory; a regular file at
// store.path (a bolt store, say) is a config error naming the file.
func TestPebblePath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "jabbergate.db")
	if err := os.WriteFile(file, []byte("bolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(valid+"store:\n  backend: pebble\n  path: jabbergate.db\n"))
	want := fmt.Sprintf(`%s:11: store.path: %q is a regular file, but the pebble backend keeps its data in a directory (a bolt store? bolt and pebble do not share data): give another path`,
		filepath.Join(dir, "c.yaml"), file)
	if err == nil || err.Error() != want {
		t.Errorf("pebble path on a file:\n got: %v\nwant: %s", err, want)
	}
	// The same file is fine for bolt, and a directory (or nothing yet) for
	// pebble.
	if _, err := Parse(filepath.Join(dir, "c.yaml"), []byte(valid+"store:\n  backend: bolt\n  path: jabbergate.db\n")); err != nil {
		t.Errorf("bolt on a file: %v", err)
	}
	for _, p := range []string{".", "missing"} {
		c, err := Parse(filepath.Join(dir, "c.yaml"), []byte(valid+"store:\n  backend: pebble\n  path: "+p+"\n"))
		if err != nil || c.Store.Backend != "pebble" || c.Store.Path != filepath.Join(dir, p) {
			t.Errorf("pebble path %q: %+v, %v", p, c, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Setenv("JG_T_SECRET", "component-secret-1")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hash"), []byte("file-option-9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "c.yaml"), []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost], admins: [Admin@Localhost]}",
		"bridges:",
		"  - network: telegram",
		"    domain: tg.localhost",
		"    secret: ${JG_T_SECRET}",
		"    name: Telegram",
		"    options:",
		"      bot_token: option-token-2",
		"      api_id: '12345'",
		"      mystery_file: hash",
		"store:",
		"  backend: redis",
		"  redis: {url: 'redis+sentinel://user:redis-pw-3@a:26379,b:26379/m?sentinel_password=redis-pw-4'}",
		"vault: {key: 'c2VjcmV0LWtleS1ieXRlcy0zMi1sb25nLXh4eHh4eHg='}",
		"http: {listen: 'off'}",
	)))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"component-secret-1", "option-token-2", "redis-pw-3", "redis-pw-4", "file-option-9", "c2VjcmV0LWtleS1ieXRlcy0zMi1sb25nLXh4eHh4eHg="}
	out := c.Redacted()
	printed := []string{
		out,
		c.String(),
		fmt.Sprintf("%v", c),
		fmt.Sprintf("%+v", *c),
		fmt.Sprintf("%#v", c),
		fmt.Sprintf("%v %+v %#v", c.Bridges, c.Store, c.Vault),
	}
	for i, p := range printed {
		for _, s := range secrets {
			if strings.Contains(p, s) {
				t.Errorf("output %d leaks %q:\n%s", i, s, p)
			}
		}
	}
	for _, want := range []string{
		"secret: REDACTED",
		"bot_token: REDACTED",
		"mystery: REDACTED",
		`api_id: "12345"`,
		"url: redis+sentinel://user:REDACTED@a:26379,b:26379/m?sentinel_password=REDACTED",
		"key: REDACTED",
		"listen: \"off\"",
		"name: Telegram",
		"- admin@localhost",
		"max_stanza_size: 256KiB",
		"ping_interval: 30s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Redacted lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `secret_file`) || strings.Contains(out, `url_file`) {
		t.Errorf("empty keys not pruned:\n%s", out)
	}
	// Redacting works on a copy.
	if c.Bridges[0].Secret != "component-secret-1" || c.Bridges[0].Options["bot_token"] != "option-token-2" || c.Vault.Key == redacted {
		t.Errorf("Redacted modified the config")
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"256KiB", 256 * KiB, "256KiB"},
		{"1MiB", MiB, "1MiB"},
		{"1 mib", MiB, "1MiB"},
		{"2GiB", 2 * GiB, "2GiB"},
		{"10000", 10000, "10000"},
		{"10000B", 10000, "10000"},
		{"64KB", 64000, "64000"},
		{"1MB", 1000000, "1000000"},
		{"1024", KiB, "1KiB"},
		{"0", 0, "0"},
		{"-1KiB", -KiB, "-1KiB"},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseByteSize(%q) = %d (%s), %v; want %d (%s)", tt.in, got, got, err, tt.want, tt.str)
		}
	}
	for _, bad := range []string{"", "KiB", "1.5MiB", "12 parsecs", "0x10", "99999999999999999999", "9999999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", bad)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"secert", "secret", 1}, {"sever", "server", 1}, {"", "abc", 3},
		{"domian", "domain", 1}, {"listen", "listen", 0}, {"keyfile", "key_file", 1},
		{"abc", "xyz", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	c, err := Parse("t.yaml", []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"x-common: &common",
		"  network: echo",
		"  secret: shared",
		"bridges:",
		"  - <<: *common",
		"    domain: one.localhost",
		"  - <<: *common",
		"    domain: two.localhost",
		"    secret: own",
	)))
	if err == nil {
		t.Fatal("x-common accepted as a key")
	}
	if got := errStrings(t, err); !slices.Equal(got, []string{`t.yaml:3: x-common: unknown key (known keys: xmpp, bridges, store, http, access, log, vault, media, cluster)`}) {
		t.Fatalf("errors: %q", got)
	}
	c, err = Parse("t.yaml", []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges:",
		"  - &first",
		"    network: echo",
		"    domain: one.localhost",
		"    secret: shared",
		"  - <<: *first",
		"    domain: two.localhost",
		"    secret: own",
		"  - <<: [*first]",
		"    domain: three.localhost",
		"    secert: typo",
	)))
	if got := errStrings(t, err); !slices.Equal(got, []string{`t.yaml:13: bridges[2].secert: unknown key (did you mean "secret"?)`}) {
		t.Fatalf("errors: %q", got)
	}
	c, err = Parse("t.yaml", []byte(doc(
		"xmpp: {server: 'localhost:5347'}",
		"access: {allowed_domains: [localhost]}",
		"bridges:",
		"  - &first",
		"    network: echo",
		"    domain: one.localhost",
		"    secret: shared",
		"  - <<: *first",
		"    domain: two.localhost",
		"    secret: own",
	)))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Bridges[1]; b.Network != "echo" || b.Domain != "two.localhost" || b.Secret != "own" {
		t.Errorf("merged bridge = %+v", b)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tt := range []struct {
		e    Error
		want string
	}{
		{Error{"c.yaml", 7, "bridges[0].secret", "required"}, "c.yaml:7: bridges[0].secret: required"},
		{Error{"c.yaml", 0, "bridges", "required"}, "c.yaml: bridges: required"},
		{Error{"c.yaml", 3, "", "invalid YAML: x"}, "c.yaml:3: invalid YAML: x"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if Errors(nil) != nil {
		t.Error("Errors(nil) != nil")
	}
	wrapped := fmt.Errorf("check: %w", &Error{File: "f", Problem: "p"})
	if got := Errors(wrapped); len(got) != 1 || got[0].Problem != "p" {
		t.Errorf("Errors(wrapped) = %v", got)
	}
}

func TestLine(t *testing.T) {
	c, err := Parse("t.yaml", []byte(valid+"  admins: [a@localhost]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{
		"xmpp":                      1,
		"xmpp.server":               2,
		"xmpp.ping_interval":        1, // absent: its parent
		"bridges[0]":                4,
		"bridges[0].options":        4,
		"bridges[0].secret":         6,
		"access.admins[0]":          9,
		"access.allowed_domains[0]": 8,
		"log.level":                 0,
	} {
		if got := c.Line(key); got != want {
			t.Errorf("Line(%q) = %d, want %d", key, got, want)
		}
	}
}

// The host of xmpp.server and bridges[].server is an IP literal or a DNS
// name (RFC 1123), checked at its line, instead of run retrying forever
// with "no such host".
func TestServerHost(t *testing.T) {
	for _, c := range []struct {
		server, want string
	}{
		{"localhost:5347", ""},
		{"127.0.0.1:5347", ""},
		{"[::1]:5347", ""},
		{"xmpp-1.Example.org:5347", ""},
		{"example.org.:5347", ""},
		{"a b:5347", `t.yaml:2: xmpp.server: invalid host "a b" in "a b:5347": character ' ' not allowed`},
		{"exa_mple..com:5347", `t.yaml:2: xmpp.server: invalid host "exa_mple..com" in "exa_mple..com:5347": character '_' not allowed`},
		{"example..com:5347", `t.yaml:2: xmpp.server: invalid host "example..com" in "example..com:5347": empty label`},
		{"-bad.org:5347", `t.yaml:2: xmpp.server: invalid host "-bad.org" in "-bad.org:5347": a label starts or ends with '-'`},
		{"exa_mple.com:5347", `t.yaml:2: xmpp.server: invalid host "exa_mple.com" in "exa_mple.com:5347": character '_' not allowed`},
		{"1.2.3.999:5347", `t.yaml:2: xmpp.server: invalid host "1.2.3.999" in "1.2.3.999:5347": neither an IP address nor a domain name`},
	} {
		y := strings.Replace(valid, "server: localhost:5347", "server: "+strconv.Quote(c.server), 1)
		_, err := Parse("t.yaml", []byte(y))
		got := strings.Join(errStrings(t, err), "\n")
		if c.want == "" && got != "" || c.want != "" && !strings.HasPrefix(got, c.want) {
			t.Errorf("server %q: got %q, want %q", c.server, got, c.want)
		}
	}
	y := valid + "  - network: echo\n    domain: b.localhost\n    secret: s\n    server: 'a b:1'\n"
	y = strings.Replace(y, "access:\n  allowed_domains: [localhost]\n", "", 1) + "access:\n  allowed_domains: [localhost]\n"
	if _, err := Parse("t.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), `bridges[1].server: invalid host "a b"`) {
		t.Errorf("bridges[1].server 'a b:1': %v", err)
	}
}
