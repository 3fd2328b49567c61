package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/stanza"
)

const doctorSecret = "doctor-secret-value"

// doctorConfig writes a config for one echo bridge on addr and loads it.
// extra is appended verbatim (top-level YAML).
func doctorConfig(t *testing.T, addr, extra string) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf(`xmpp:
  server: %s
bridges:
  - network: echo
    domain: echo.localhost
    secret: %s
access:
  allowed_domains: [localhost]
vault:
  key_file: %s
`, addr, doctorSecret, filepath.Join(dir, "vault.key"))
	if !strings.Contains(extra, "store:") {
		body += "store:\n  path: " + filepath.Join(dir, "jabbergate.db") + "\n"
	}
	if !strings.Contains(extra, "http:") {
		body += "http:\n  listen: \"off\"\n"
	}
	body += extra
	p := writeConfig(t, body)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, body)
	}
	return cfg, p
}

// find returns the checks named name.
func find(checks []check, name string) []check {
	var out []check
	for _, c := range checks {
		if c.Check == name {
			out = append(out, c)
		}
	}
	return out
}

func one(t *testing.T, checks []check, name string) check {
	t.Helper()
	f := find(checks, name)
	if len(f) != 1 {
		t.Fatalf("want one %q check, got %d:\n%s", name, len(f), report(checks))
	}
	return f[0]
}

func report(checks []check) string {
	var b strings.Builder
	writeTextReport(&b, checks)
	return b.String()
}

// injectAfterHandshake sends st to the component once it has connected.
func injectAfterHandshake(t *testing.T, srv *componenttest.Server, st string) {
	go func() {
		if err := srv.WaitHandshakes(1, 10*time.Second); err != nil {
			return
		}
		_ = srv.InjectRaw(st)
	}()
}

// answerRosterProbe answers doctor's privileged roster request with reply
// (built from the request).
func answerRosterProbe(t *testing.T, srv *componenttest.Server, reply func(*stanza.Element) *stanza.Element) {
	go func() {
		iq, err := srv.WaitFor(15*time.Second, func(e *stanza.Element) bool {
			return e.Local == "iq" && e.Child("jabber:iq:roster", "query") != nil
		})
		if err == nil {
			_ = srv.Inject(reply(iq))
		}
	}()
}

// TestDoctorBrokenRosterPrivilege: a server that advertises roster access
// and fails the request (ejabberd 23.01) is a warning naming the failure
// and the version that works, not OK.
func TestDoctorBrokenRosterPrivilege(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	injectAfterHandshake(t, srv, `<message from='localhost' to='echo.localhost'><privilege xmlns='urn:xmpp:privilege:1'>`+
		`<perm access='roster' type='both'/><perm access='message' type='outgoing'/></privilege></message>`)
	answerRosterProbe(t, srv, func(iq *stanza.Element) *stanza.Element {
		return stanza.ErrorReply(iq, &stanza.Error{Type: stanza.ErrWait, Condition: stanza.InternalServerError, Text: "Module failed to handle the query"})
	})
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	c := one(t, runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 10 * time.Second}), "privileges")
	if c.Status != statusWarn || !strings.Contains(c.Message, "failed a privileged roster request (internal-server-error \"Module failed to handle the query\"") ||
		!strings.Contains(c.Fix["ejabberd"], "23.10 or later") {
		t.Errorf("privileges = %+v", c)
	}
}

func TestDoctorPrivilegesV2AndPing(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	injectAfterHandshake(t, srv, `<message from='localhost' to='echo.localhost'><privilege xmlns='urn:xmpp:privilege:2'>`+
		`<perm access='roster' type='both' push='true'/><perm access='message' type='outgoing'/></privilege></message>`)
	answerRosterProbe(t, srv, func(iq *stanza.Element) *stanza.Element {
		return stanza.Result(iq, stanza.New("jabber:iq:roster", "query"))
	})
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 10 * time.Second})
	t.Log("\n" + report(checks))

	if c := one(t, checks, "link"); c.Status != statusOK || !strings.Contains(c.Message, "handshake for echo.localhost accepted") {
		t.Errorf("link = %+v", c)
	}
	c := one(t, checks, "privileges")
	if c.Status != statusOK || !strings.Contains(c.Message, "urn:xmpp:privilege:2 (v2)") ||
		!strings.Contains(c.Message, "roster=both (push)") || !strings.Contains(c.Message, "message=outgoing") ||
		!strings.Contains(c.Message, "a privileged roster request was answered") {
		t.Errorf("privileges = %+v", c)
	}
	if c := one(t, checks, "ping"); c.Status != statusOK || !strings.Contains(c.Message, "ping to localhost answered in") {
		t.Errorf("ping = %+v", c)
	}
	// The fake server answers disco#items with service-unavailable.
	if c := one(t, checks, "upload"); c.Status != statusWarn || !strings.Contains(c.Message, "users' files cannot be sent") || c.Fix["prosody"] == "" {
		t.Errorf("upload = %+v", c)
	} else {
		// The gateway requests no upload slots: the fixes grant it nothing,
		// and a Prosody access list naming only the gateway would lock the
		// users out (mod_http_file_share admits only what a non-empty list
		// names).
		if strings.Contains(c.Fix["prosody"], `http_file_share_access = {`) || !strings.Contains(c.Fix["prosody"], `Component "upload.localhost" "http_file_share"`) {
			t.Errorf("prosody upload fix sets an access list:\n%s", c.Fix["prosody"])
		}
		if strings.Contains(c.Fix["ejabberd"], "gateway_acl") || !strings.Contains(c.Fix["ejabberd"], "mod_http_upload") {
			t.Errorf("ejabberd upload fix grants the gateway access:\n%s", c.Fix["ejabberd"])
		}
	}
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "does not exist yet") {
		t.Errorf("store = %+v", c)
	}
	if c := one(t, checks, "media"); c.Status != statusWarn || !strings.Contains(c.Fix["jabbergate"], "base_url") {
		t.Errorf("media = %+v", c)
	}
	if len(find(checks, "accounts")) != 0 {
		t.Errorf("accounts checked without -check-accounts")
	}
	// Doctor closed its link cleanly: the server saw no violation, and the
	// only stream it served is gone.
	if err := srv.WaitDisconnected(10 * time.Second); err != nil {
		t.Error(err)
	}
	if v := srv.Violations(); len(v) != 0 {
		t.Errorf("violations: %v", v)
	}
	// Only the ping and disco requests were sent, and the roster probe: the
	// removal of an item that is in no roster (a no-op).
	for _, st := range srv.Received() {
		probe := st.Type() == "set" && st.Child("jabber:iq:roster", "query") != nil &&
			strings.Contains(st.String(), `<item jid='jabbergate-doctor-probe@echo.localhost' subscription='remove'/>`)
		if st.Local != "iq" || st.Type() != "get" && !probe {
			t.Errorf("doctor sent %s", st)
		}
	}
}

func TestDoctorPrivilegesV1Partial(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	injectAfterHandshake(t, srv, `<message from='localhost' to='echo.localhost'><privilege xmlns='urn:xmpp:privilege:1'>`+
		`<perm access='roster' type='get'/></privilege></message>`)
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 10 * time.Second})
	c := one(t, checks, "privileges")
	if c.Status != statusWarn || !strings.Contains(c.Message, "urn:xmpp:privilege:1 (v1)") || !strings.Contains(c.Message, "roster=get") ||
		!strings.Contains(c.Message, "message=none") || !strings.Contains(c.Message, "missing: roster set") {
		t.Errorf("privileges = %+v", c)
	}
	if !strings.Contains(c.Fix["ejabberd"], "mod_privilege") || !strings.Contains(c.Fix["prosody"], "privileged_entities") {
		t.Errorf("fix = %v", c.Fix)
	}
}

// TestDoctorIQPrivilegeNotNeeded: an iq permission (pubsub here) is
// excess privilege — the gateway sends no privileged IQs and the grant
// opens every user's PEP, OMEMO keys included — so a grant that is
// otherwise complete is a warning whose fixes grant roster and message
// only.
func TestDoctorIQPrivilegeNotNeeded(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	injectAfterHandshake(t, srv, `<message from='localhost' to='echo.localhost'><privilege xmlns='urn:xmpp:privilege:2'>`+
		`<perm access='roster' type='both' push='true'/><perm access='message' type='outgoing'/>`+
		`<perm access='iq'><namespace ns='http://jabber.org/protocol/pubsub' type='both'/></perm></privilege></message>`)
	answerRosterProbe(t, srv, func(iq *stanza.Element) *stanza.Element {
		return stanza.Result(iq, stanza.New("jabber:iq:roster", "query"))
	})
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	c := one(t, runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 10 * time.Second}), "privileges")
	if c.Status != statusWarn || !strings.Contains(c.Message, "iq=http://jabber.org/protocol/pubsub=both") ||
		!strings.Contains(c.Message, "not needed: the iq permission") || strings.Contains(c.Message, "missing:") {
		t.Errorf("privileges = %+v", c)
	}
	if strings.Contains(c.Fix["prosody"], "iq") || strings.Contains(c.Fix["ejabberd"], "iq:") ||
		!strings.Contains(c.Fix["prosody"], `roster = "both"; message = "outgoing";`) {
		t.Errorf("fix grants iq or lacks roster/message:\n%v", c.Fix)
	}
}

func TestDoctorNoPrivileges(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 100 * time.Millisecond})
	c := one(t, checks, "privileges")
	if c.Status != statusWarn || !strings.Contains(c.Message, "no XEP-0356 privilege advertisement") {
		t.Errorf("privileges = %+v", c)
	}
	for _, want := range []string{"mod_privilege:", "both: gateway_rule", "outgoing: gateway_rule", `- "echo.localhost"`} {
		if !strings.Contains(c.Fix["ejabberd"], want) {
			t.Errorf("ejabberd fix lacks %q:\n%s", want, c.Fix["ejabberd"])
		}
	}
	for _, want := range []string{`modules_enabled = { "privilege" }`, `["echo.localhost"] = { roster = "both"; message = "outgoing"; }`, `VirtualHost "localhost"`} {
		if !strings.Contains(c.Fix["prosody"], want) {
			t.Errorf("prosody fix lacks %q:\n%s", want, c.Fix["prosody"])
		}
	}
}

// TestDoctorSecretFileNamed: with the secret in a file, a rejected secret
// names that key and file, not a "secret" key the config does not have.
func TestDoctorSecretFileNamed(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	srv.FailHandshakes("not-authorized", "")
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	cfg.Bridges[0].SecretFile = "/etc/jabbergate/echo.secret"
	c := one(t, runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 100 * time.Millisecond}), "link")
	want := "bridges[0].secret_file (/etc/jabbergate/echo.secret) does not match"
	if !strings.Contains(c.Message, want) || !strings.Contains(c.Fix["prosody"], "<the secret of bridges[0].secret_file (/etc/jabbergate/echo.secret)>") {
		t.Errorf("check = %+v, want the message to say %q", c, want)
	}
}

func TestDoctorHandshakeErrors(t *testing.T) {
	cases := []struct {
		cond, status string
		want         []string
		fix          map[string]string
	}{
		{"not-authorized", statusFail, []string{"rejected the secret", "bridges[0].secret does not match"}, map[string]string{
			"ejabberd": "module: ejabberd_service\n    hosts:\n      \"echo.localhost\":\n        password: \"<the secret of bridges[0].secret>\"",
			"prosody":  "Component \"echo.localhost\"\n  component_secret = \"<the secret of bridges[0].secret>\"",
			"openfire": "External Components",
		}},
		{"host-unknown", statusFail, []string{"has no component echo.localhost configured"}, map[string]string{
			"prosody":  "Component \"echo.localhost\"\n  component_secret = \"<the secret of bridges[0].secret>\"\n-- then restart Prosody: 0.12 does not start a Component block added on reload",
			"openfire": "subdomain of the XMPP domain",
		}},
		{"conflict", statusWarn, []string{"another component is connected as echo.localhost", "skipped"}, nil},
		{"invalid-namespace", statusFail, []string{"is not the server's component port"}, map[string]string{
			"prosody": "component_ports = {",
		}},
		{"system-shutdown", statusFail, []string{"stream error system-shutdown", "shutting down"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.cond, func(t *testing.T) {
			srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
			srv.FailHandshakes(tc.cond, "")
			cfg, p := doctorConfig(t, srv.Addr(), "")
			checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 100 * time.Millisecond})
			c := one(t, checks, "link")
			if c.Status != tc.status {
				t.Errorf("status = %s, want %s: %+v", c.Status, tc.status, c)
			}
			for _, w := range tc.want {
				if !strings.Contains(c.Message, w) {
					t.Errorf("message lacks %q: %s", w, c.Message)
				}
			}
			for k, w := range tc.fix {
				if !strings.Contains(c.Fix[k], w) {
					t.Errorf("fix[%s] lacks %q:\n%s", k, w, c.Fix[k])
				}
			}
			for _, name := range []string{"privileges", "ping", "upload"} {
				if len(find(checks, name)) != 0 {
					t.Errorf("%s checked without a link", name)
				}
			}
			if strings.Contains(report(checks), doctorSecret) {
				t.Errorf("report prints the secret")
			}
			// One attempt only, and the exit status through the CLI.
			code, out, errs := runCLI("doctor", "-config", p, "-json")
			want := 1
			if tc.status == statusWarn {
				want = 0
			}
			if code != want {
				t.Errorf("exit %d, want %d\n%s%s", code, want, out, errs)
			}
			if n := len(srv.Attempts()); n != 2 {
				t.Errorf("%d connection attempts for two doctor runs, want 2", n)
			}
		})
	}
}

// fakeGatewayHTTP serves /healthz and /readyz like a running gateway and
// returns the http.listen YAML naming it.
func fakeGatewayHTTP(t *testing.T, readyCode int, ready string) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			fmt.Fprintln(w, "ok")
		case "/readyz":
			w.WriteHeader(readyCode)
			fmt.Fprintln(w, ready)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(hs.Close)
	return "http:\n  listen: " + strings.TrimPrefix(hs.URL, "http://") + "\n"
}

func TestDoctorBesideRunningGatewayOpensNoLink(t *testing.T) {
	for _, tc := range []struct {
		code          int
		ready, status string
		want          string
	}{
		{http.StatusOK, "ready", statusOK, "reports its link for echo.localhost up"},
		{http.StatusServiceUnavailable, "link echo.localhost down", statusWarn, "reports its link for echo.localhost down"},
	} {
		srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
		cfg, _ := doctorConfig(t, srv.Addr(), fakeGatewayHTTP(t, tc.code, tc.ready))
		checks := runDoctor(context.Background(), cfg, doctorOptions{})
		c := one(t, checks, "link")
		if c.Status != tc.status || !strings.Contains(c.Message, tc.want) || !strings.Contains(c.Message, "-force-link") {
			t.Errorf("link = %+v", c)
		}
		if n := len(srv.Attempts()); n != 0 {
			t.Errorf("doctor connected %d times beside a running gateway", n)
		}
		for _, name := range []string{"privileges", "ping", "upload"} {
			if len(find(checks, name)) != 0 {
				t.Errorf("%s checked without a link", name)
			}
		}
	}
}

func TestDoctorConflictWithRunningGateway(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	srv.FailHandshakes("conflict", "")
	cfg, _ := doctorConfig(t, srv.Addr(), fakeGatewayHTTP(t, http.StatusOK, "ready"))
	checks := runDoctor(context.Background(), cfg, doctorOptions{ForceLink: true})
	c := one(t, checks, "link")
	if c.Status != statusWarn || !strings.Contains(c.Message, "already connected") || !strings.Contains(c.Message, "left the running gateway alone") {
		t.Errorf("link = %+v", c)
	}
}

func TestDoctorUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, _ := doctorConfig(t, addr, "")
	checks := runDoctor(context.Background(), cfg, doctorOptions{})
	c := one(t, checks, "link")
	if c.Status != statusFail || !strings.Contains(c.Message, "cannot reach the component listener "+addr) || !strings.Contains(c.Fix["ejabberd"], "ejabberd_service") {
		t.Errorf("link = %+v", c)
	}
	// Prosody opens component_ports only once a Component is defined: the
	// fix has the block too, with a placeholder for the secret.
	_, port, _ := net.SplitHostPort(addr)
	for _, want := range []string{"component_ports = { " + port + " }", "only once a Component is defined",
		"Component \"echo.localhost\"\n  component_secret = \"<the secret of bridges[0].secret>\""} {
		if !strings.Contains(c.Fix["prosody"], want) {
			t.Errorf("prosody fix lacks %q:\n%s", want, c.Fix["prosody"])
		}
	}
	if !strings.Contains(c.Message, "Prosody opens component_ports only once a Component is defined") {
		t.Errorf("message does not say Prosody needs a Component: %s", c.Message)
	}
	if strings.Contains(report(checks), doctorSecret) {
		t.Errorf("report prints the secret")
	}
}

func TestDoctorAnswersStrayStanzas(t *testing.T) {
	// ejabberd load-balances between two links of one domain: an IQ meant
	// for the running gateway may reach doctor. It is answered with a
	// retryable error and counted.
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	injectAfterHandshake(t, srv, `<iq type='get' id='stray1' from='romeo@localhost/x' to='echo.localhost'><query xmlns='jabber:iq:version'/></iq>`+
		`<message from='localhost' to='echo.localhost'><privilege xmlns='urn:xmpp:privilege:2'><perm access='roster' type='both'/><perm access='message' type='outgoing'/></privilege></message>`)
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 10 * time.Second})
	reply, err := srv.WaitFor(10*time.Second, func(st *stanza.Element) bool { return st.ID() == "stray1" })
	if err != nil {
		t.Fatalf("stray IQ not answered: %v", err)
	}
	if reply.Type() != "error" || !strings.Contains(reply.String(), "resource-constraint") || !strings.Contains(reply.String(), "type=\"wait\"") && !strings.Contains(reply.String(), "type='wait'") {
		t.Errorf("reply = %s", reply)
	}
	var warned bool
	for _, c := range find(checks, "link") {
		if c.Status == statusWarn && strings.Contains(c.Message, "1 stanza(s) meant for the running gateway") {
			warned = true
			// domain_balancing drops stanzas unless component_number
			// equals the live links (docs/admin-ejabberd.md §4): a
			// stray stanza on doctor's own link is no reason for it.
			if strings.Contains(c.Message+c.Fix["ejabberd"], "domain_balancing:") || strings.Contains(c.Fix["ejabberd"], "bare_source") {
				t.Errorf("the stray-stanza warning suggests domain_balancing: %+v", c)
			}
		}
	}
	if !warned {
		t.Errorf("no stray-stanza warning:\n%s", report(checks))
	}
}

func TestDoctorBoltLockedAndAccounts(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	dir := t.TempDir()
	path := filepath.Join(dir, "jg.db")
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []string{"romeo@localhost", "juliet@localhost"} {
		if err := st.PutAccount(ctx, &store.Account{Bridge: "echo.localhost", JID: u, LegacyID: u}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  path: "+path+"\n")

	// Held by a "running gateway": reported as in use, never forced.
	checks := runDoctor(ctx, cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true})
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "in use by a running gateway") {
		t.Errorf("store = %+v", c)
	}
	if c := one(t, checks, "accounts"); c.Status != statusOK || !strings.Contains(c.Message, "not counted") {
		t.Errorf("accounts = %+v", c)
	}
	// A locked store means a gateway runs: no link of doctor's own.
	if c := one(t, checks, "link"); c.Status != statusWarn || !strings.Contains(c.Message, "is locked") {
		t.Errorf("link = %+v", c)
	}
	if n := len(srv.Attempts()); n != 0 {
		t.Errorf("doctor connected %d times beside a running gateway", n)
	}
	st.Close()

	checks = runDoctor(ctx, cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true})
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "opens") {
		t.Errorf("store = %+v", c)
	}
	if c := one(t, checks, "accounts"); c.Status != statusOK || !strings.Contains(c.Message, "2 registered account(s)") || !strings.Contains(c.Message, "legacy logins not tried") {
		t.Errorf("accounts = %+v", c)
	}
}

func TestDoctorBoltMissingDirectory(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	path := filepath.Join(t.TempDir(), "nope", "jg.db")
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  path: "+path+"\n")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond})
	if c := one(t, checks, "store"); c.Status != statusFail || !strings.Contains(c.Message, "directory") {
		t.Errorf("store = %+v", c)
	}
}

func TestDoctorPebble(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  backend: pebble\n  path: "+path+"\n")
	ctx := context.Background()
	opts := doctorOptions{PrivilegeWait: 50 * time.Millisecond, CheckAccounts: true}

	// Not created yet: fine, and doctor does not create it.
	checks := runDoctor(ctx, cfg, opts)
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "does not exist yet") {
		t.Errorf("store = %+v", c)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("doctor created %s: %v", path, err)
	}

	st, err := pebblestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"romeo@localhost", "juliet@localhost"} {
		if err := st.PutAccount(ctx, &store.Account{Bridge: "echo.localhost", JID: u, LegacyID: u}); err != nil {
			t.Fatal(err)
		}
	}
	// Held by a "running gateway": reported as in use, never forced.
	checks = runDoctor(ctx, cfg, opts)
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "in use by a running gateway") {
		t.Errorf("store = %+v", c)
	}
	if c := one(t, checks, "link"); c.Status != statusWarn || !strings.Contains(c.Message, "is locked") {
		t.Errorf("link = %+v", c)
	}
	st.Close()

	checks = runDoctor(ctx, cfg, opts)
	if c := one(t, checks, "store"); c.Status != statusOK || !strings.Contains(c.Message, "opens") {
		t.Errorf("store = %+v", c)
	}
	if c := one(t, checks, "accounts"); c.Status != statusOK || !strings.Contains(c.Message, "2 registered account(s)") {
		t.Errorf("accounts = %+v", c)
	}
}

func TestDoctorRedisAOF(t *testing.T) {
	rs := redistest.StartServer(t)
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  backend: redis\n  redis:\n    url: "+rs.URL()+"\n")
	ctx := context.Background()
	checks := runDoctor(ctx, cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond})
	st := find(checks, "store")
	if len(st) != 2 || st[0].Status != statusOK || !strings.Contains(st[0].Message, "PING") ||
		st[1].Status != statusOK || !strings.Contains(st[1].Message, "append-only file on") {
		t.Fatalf("store checks = %+v", st)
	}

	// Turn AOF off: WARN with the redis.conf line.
	s, aofCleanup := redisClient(t, rs.URL())
	defer aofCleanup()
	if err := s.ConfigSet(ctx, "appendonly", "no").Err(); err != nil {
		t.Fatal(err)
	}
	checks = runDoctor(ctx, cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond})
	st = find(checks, "store")
	if len(st) != 2 || st[1].Status != statusWarn || !strings.Contains(st[1].Message, "append-only file off") || !strings.Contains(st[1].Fix["redis"], "appendonly yes") {
		t.Fatalf("store checks = %+v", st)
	}
}

func TestDoctorRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  backend: redis\n  redis:\n    url: redis://"+addr+"/0\n")
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond, Timeout: 2 * time.Second})
	if c := one(t, checks, "store"); c.Status != statusFail || !strings.Contains(c.Message, "store.redis.url") {
		t.Errorf("store = %+v", c)
	}
}

func TestDoctorMediaAndWebhooks(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer hs.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	cfg, _ := doctorConfig(t, srv.Addr(), "media:\n  base_url: "+hs.URL+"\n")
	cfg.Bridges[0].Options = map[string]string{"public_url": dead + "/webhooks/echo.localhost"}
	checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond})
	if c := one(t, checks, "media"); c.Status != statusOK || !strings.Contains(c.Message, "reachable (HTTP 404)") {
		t.Errorf("media = %+v", c)
	}
	if c := one(t, checks, "webhook"); c.Status != statusWarn || !strings.Contains(c.Message, "options.public_url") || !strings.Contains(c.Message, "not reachable") {
		t.Errorf("webhook = %+v", c)
	}
}

func TestDoctorCLI(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	_, p := doctorConfig(t, srv.Addr(), "")
	code, out, errs := runCLI("doctor", "-config", p, "-json", "-timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var c check
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", l, err)
		}
		if c.Status != statusOK && c.Status != statusWarn {
			t.Errorf("check %+v", c)
		}
		seen[c.Check] = true
	}
	for _, want := range []string{"store", "media", "link", "privileges", "ping", "upload"} {
		if !seen[want] {
			t.Errorf("no %s check in %s", want, out)
		}
	}

	// The first run's link must be gone before the second connects, or the
	// server (like Prosody) answers conflict.
	if err := srv.WaitDisconnected(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI("doctor", "-config", p)
	if code != 0 || !strings.Contains(out, "[bridge echo.localhost]") || !strings.Contains(out, "FAIL") || !strings.Contains(out, "fix (prosody):") {
		t.Errorf("text report: exit %d\n%s", code, out)
	}

	// Configuration errors: the same output and exit status as run.
	bad := writeConfig(t, strings.Replace(goodConfig, "    secret:", "    secert:", 1))
	code, _, errs = runCLI("doctor", "-config", bad)
	_, _, runErrs := runCLI("run", "-config", bad)
	if code != exitConfig || errs != runErrs || !strings.Contains(errs, "configuration error") {
		t.Errorf("config error: exit %d %q (run: %q)", code, errs, runErrs)
	}
	if code, _, errs := runCLI("doctor"); code != exitConfig || !strings.Contains(errs, "-config FILE is required") {
		t.Errorf("no -config: %d %q", code, errs)
	}
}

// redisClient opens a client on url for the test.
func redisClient(t *testing.T, url string) (goredis.UniversalClient, func()) {
	t.Helper()
	s, err := redisstore.Open(context.Background(), url, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Client(), func() { s.Close() }
}

// A running gateway that is a cluster standby is no warning: its link is
// down by design.
func TestDoctorRunningLinkCheckStandby(t *testing.T) {
	listening := componenttest.NewServer(t, "echo.localhost", doctorSecret).Addr()
	down := freeAddr(t) // nothing listens there
	for _, c := range []struct{ ready, addr, status, want string }{
		{"link echo.localhost standby\n", listening, statusOK, "cluster standby"},
		{"link echo.localhost down\n", listening, statusWarn, "although " + listening + " accepts connections"},
		// The server is down: a failure, not a warning.
		{"link echo.localhost down\n", down, statusFail, "the component listener " + down + " cannot be reached"},
		{"ok\n", listening, statusOK, "up"},
	} {
		got := runningLinkCheck("echo.localhost", c.addr, gatewayState{running: true, how: "test", ready: c.ready}, time.Second)
		if got.Status != c.status || !strings.Contains(got.Message, c.want) {
			t.Errorf("/readyz %q, server %s: %s %q", c.ready, c.addr, got.Status, got.Message)
		}
	}
}

// TestDoctorWebhookOnOwnListener: a webhook URL served by the gateway's
// own http.listen cannot answer while the gateway is stopped (the usual
// moment to run doctor): that is said, as not checked, instead of warned
// about. A running gateway's URL, a URL on another address, or a port
// something else holds are checked as before.
func TestDoctorWebhookOnOwnListener(t *testing.T) {
	stopped := freeAddr(t)
	_, stoppedPort, _ := net.SplitHostPort(stopped)
	running := fakeGatewayHTTP(t, http.StatusOK, "ready")
	runningAddr := strings.TrimSpace(strings.TrimPrefix(running, "http:\n  listen: "))
	other := httptest.NewServer(http.NotFoundHandler()) // not a gateway: no /healthz
	t.Cleanup(other.Close)
	for _, tc := range []struct {
		name, http, url string
		status, want    string
	}{
		{"stopped", "http:\n  listen: " + stopped + "\n", "http://" + stopped + "/webhooks/echo.localhost",
			statusOK, "options.webhook_url http://" + stopped + "/webhooks/echo.localhost not checked: the gateway is not running"},
		{"stopped, listening on every address", "http:\n  listen: 0.0.0.0:" + stoppedPort + "\n", "http://127.0.0.1:" + stoppedPort + "/webhooks/echo.localhost",
			statusOK, "not checked: the gateway is not running"},
		{"running", running, "http://" + runningAddr + "/webhooks/echo.localhost",
			statusOK, "reachable (HTTP 404)"},
		{"another address", "http:\n  listen: " + freeAddr(t) + "\n", "http://" + stopped + "/webhooks/echo.localhost",
			statusWarn, "not reachable"},
		{"port held by something else", "http:\n  listen: " + strings.TrimPrefix(other.URL, "http://") + "\n", other.URL + "/webhooks/echo.localhost",
			statusOK, "reachable (HTTP 404)"},
	} {
		srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
		cfg, _ := doctorConfig(t, srv.Addr(), tc.http)
		cfg.Bridges[0].Options = map[string]string{"webhook_url": tc.url}
		checks := runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 50 * time.Millisecond})
		if c := one(t, checks, "webhook"); c.Status != tc.status || !strings.Contains(c.Message, tc.want) {
			t.Errorf("%s: webhook = %s %q, want %s %q", tc.name, c.Status, c.Message, tc.status, tc.want)
		}
	}
}
func TestServedByListener(t *testing.T) {
	for _, tc := range []struct {
		listen, url string
		want        bool
	}{
		{"127.0.0.1:9470", "http://127.0.0.1:9470/webhooks/t.example", true},
		{"127.0.0.1:9470", "http://127.0.0.1:9471/webhooks/t.example", false},
		{"127.0.0.1:9470", "https://127.0.0.1:9470/webhooks/t.example", false}, // the listener speaks plain HTTP
		{"127.0.0.1:80", "http://127.0.0.1/webhooks/t.example", true},
		{"127.0.0.1:9470", "http://127.0.0.2:9470/webhooks/t.example", false},
		{"0.0.0.0:9470", "http://127.0.0.1:9470/webhooks/t.example", true},
		{":9470", "http://[::1]:9470/webhooks/t.example", true},
		{"[::]:9470", "http://127.0.0.1:9470/", true},
		{"0.0.0.0:9470", "http://192.0.2.1:9470/", false}, // TEST-NET-1, no local interface
		{"", "http://127.0.0.1:9470/", false},
		{"127.0.0.1:9470", "http://%zz/", false},
	} {
		if got := servedByListener(context.Background(), tc.listen, tc.url, time.Second); got != tc.want {
			t.Errorf("servedByListener(%q, %q) = %v, want %v", tc.listen, tc.url, got, tc.want)
		}
	}
}

// With a Redis store, a cluster instance elsewhere (its http.listen is not
// this config's) may hold the bridge's link lease: doctor must not open a
// link of its own then (Prosody with component_conflict_resolve =
// "kick_old" would cut the active instance's), unless -force-link.
func TestDoctorClusterLinkLeaseHeld(t *testing.T) {
	rs := redistest.StartServer(t)
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	cfg, _ := doctorConfig(t, srv.Addr(), "store:\n  backend: redis\n  redis:\n    url: "+rs.URL()+"\n    prefix: jgdoc\ncluster:\n  enabled: true\n  instance: gw-1\n")
	ctx := context.Background()
	leases, err := redisstore.Open(ctx, rs.URL(), redisstore.Options{Prefix: "jgdoc"})
	if err != nil {
		t.Fatal(err)
	}
	defer leases.Close()
	// What a running active instance gw-2 holds (bridges/lease.go).
	const holder = "gw-2#0123abcd"
	tok, ok, err := leases.Acquire(ctx, "link:echo.localhost", holder, time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire link lease: %v %v", ok, err)
	}
	itok, ok, err := leases.Acquire(ctx, "inst:echo.localhost|gw-2", holder, time.Minute)
	if err != nil || !ok {
		t.Fatalf("acquire instance lease: %v %v", ok, err)
	}
	opts := doctorOptions{PrivilegeWait: 50 * time.Millisecond}

	checks := runDoctor(ctx, cfg, opts)
	c := one(t, checks, "link")
	if c.Status != statusOK || !strings.Contains(c.Message, "not checked") || !strings.Contains(c.Message, "held by instance gw-2, which is alive") || !strings.Contains(c.Message, "-force-link") {
		t.Errorf("link = %+v", c)
	}
	if n := len(srv.Attempts()); n != 0 {
		t.Fatalf("doctor connected %d time(s) while gw-2 holds the link lease", n)
	}
	for _, name := range []string{"privileges", "ping", "upload"} {
		if len(find(checks, name)) != 0 {
			t.Errorf("%s checked without a link", name)
		}
	}

	// The holder's instance lease gone (it was killed): still held, so
	// still no link; the message says it may have stopped.
	if err := leases.Release(ctx, "inst:echo.localhost|gw-2", holder, itok); err != nil {
		t.Fatal(err)
	}
	if h, _, err := leases.Holder(ctx, "inst:echo.localhost|gw-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("instance lease still held by %q (%v)", h, err)
	}
	c = one(t, runDoctor(ctx, cfg, opts), "link")
	if c.Status != statusOK || !strings.Contains(c.Message, "held by instance gw-2 (its instance lease is gone") {
		t.Errorf("link = %+v", c)
	}
	if n := len(srv.Attempts()); n != 0 {
		t.Fatalf("doctor connected %d time(s) while gw-2 holds the link lease", n)
	}

	// -force-link tests anyway.
	opts.ForceLink = true
	if c := one(t, runDoctor(ctx, cfg, opts), "link"); c.Status != statusOK || !strings.Contains(c.Message, "handshake for echo.localhost accepted") {
		t.Errorf("forced link = %+v", c)
	}
	if n := len(srv.Attempts()); n != 1 {
		t.Fatalf("forced: %d connection(s), want 1", n)
	}

	// Released: no instance runs the link, doctor checks it.
	opts.ForceLink = false
	if err := leases.Release(ctx, "link:echo.localhost", holder, tok); err != nil {
		t.Fatal(err)
	}
	if c := one(t, runDoctor(ctx, cfg, opts), "link"); c.Status != statusOK || !strings.Contains(c.Message, "handshake for echo.localhost accepted") {
		t.Errorf("link after release = %+v", c)
	}
	if n := len(srv.Attempts()); n != 2 {
		t.Fatalf("after release: %d connection(s), want 2", n)
	}
}

// Prosody's client port answers a component stream for a domain it does
// not serve to clients with host-unknown "This server does not serve …":
// doctor says the port is wrong, not that the component is missing.
func TestDoctorClientPortHostUnknown(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	srv.FailHandshakes("host-unknown", "This server does not serve echo.localhost")
	cfg, _ := doctorConfig(t, srv.Addr(), "")
	c := one(t, runDoctor(context.Background(), cfg, doctorOptions{PrivilegeWait: 100 * time.Millisecond}), "link")
	if c.Status != statusFail || !strings.Contains(c.Message, "is not the server's component port") || strings.Contains(c.Message, "add it") ||
		!strings.Contains(c.Fix["prosody"], "component_ports") {
		t.Errorf("check = %+v, want the wrong port named", c)
	}
	// The fix is the gateway's server setting, not a component listener
	// on the client port's number.
	port := portOf(srv.Addr())
	if !strings.Contains(c.Fix["jabbergate"], "server: 127.0.0.1:<the component port>") || !strings.Contains(c.Fix["jabbergate"], "bridges[0].server") ||
		!strings.Contains(c.Fix["prosody"], "default 5347") || !strings.Contains(c.Fix["ejabberd"], "ejabberd_service") {
		t.Errorf("fix = %q, want xmpp.server set to the component port", c.Fix)
	}
	for k, f := range c.Fix {
		if strings.Contains(f, "component_ports = { "+port) || strings.Contains(f, "port: "+port) || strings.Contains(f, "port "+port) {
			t.Errorf("fix (%s) puts a component listener on the client port %s:\n%s", k, port, f)
		}
	}
}

// What check-config and run refuse as the file system is now, doctor
// refuses as check-config does: exit 78, check-config's output on stderr,
// no report (a store.path whose directory is missing, a media.dir that is
// a file, a missing vault.key_file while the store holds accounts). The
// admin commands refuse the same, as run does. A store a running gateway
// holds is not read for the account check: a WARN line, not an error.
func TestDoctorReportsRunsConfigChecks(t *testing.T) {
	srv := componenttest.NewServer(t, "echo.localhost", doctorSecret)
	dir := t.TempDir()
	afile := filepath.Join(dir, "afile")
	if err := os.WriteFile(afile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sameAsCheckConfig := func(what, p string, wants ...string) {
		t.Helper()
		_, _, checkErrs := runCLI("check-config", "-config", p)
		for _, want := range wants {
			if !strings.Contains(checkErrs, "configuration error:\n") || !strings.Contains(checkErrs, want) {
				t.Fatalf("%s: check-config's stderr lacks %q:\n%s", what, want, checkErrs)
			}
		}
		code, out, errs := runCLI("doctor", "-config", p, "-timeout", "2s")
		if code != exitConfig || out != "" || errs != checkErrs {
			t.Errorf("%s: doctor exit %d, stdout:\n%s\nstderr:\n%s\nwant 78, no report and check-config's stderr:\n%s", what, code, out, errs, checkErrs)
		}
	}
	_, p := doctorConfig(t, srv.Addr(), "store:\n  path: "+filepath.Join(dir, "nope", "jg.db")+"\nmedia:\n  base_url: http://127.0.0.1:1/\n  dir: "+afile+"\n")
	sameAsCheckConfig("store.path and media.dir", p, p+":12: store.path: directory ", p+":15: media.dir: ")
	for _, args := range [][]string{
		{"export-user", "-config", p, "-jid", "bob@localhost"},
		{"delete-user", "-config", p, "-jid", "bob@localhost"},
		{"rotate-key", "-config", p, "-new-key-file", filepath.Join(dir, "new.key")},
	} {
		code, _, errs := runCLI(args...)
		if code != exitConfig || !strings.Contains(errs, "configuration error:\n"+p+":12: store.path: directory ") || !strings.Contains(errs, p+":15: media.dir: ") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant 78 and the store.path and media.dir errors", args[0], code, errs)
		}
	}

	// Accounts in the store and no key file.
	cfg, p := doctorConfig(t, srv.Addr(), "")
	st, err := bolt.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutAccount(context.Background(), &store.Account{Bridge: "echo.localhost", JID: "bob@localhost", LegacyID: "echo"}); err != nil {
		t.Fatal(err)
	}
	// Held by a "running gateway": the accounts are not counted, which
	// the vault line says; no error, no note on stderr.
	code, out, errs := runCLI("doctor", "-config", p, "-timeout", "2s")
	if code == exitConfig || !strings.Contains(out, "WARN  vault       ") || !strings.Contains(out, "was not checked") || strings.Contains(errs, "note:") {
		t.Errorf("store in use: exit %d, stdout:\n%s\nstderr:\n%s\nwant a WARN vault line", code, out, errs)
	}
	st.Close()
	sameAsCheckConfig("accounts, no key", p, fmt.Sprintf("%s:10: vault.key_file: key file %q does not exist, but the store holds 1 registered account", p, cfg.Vault.KeyFile))
}
