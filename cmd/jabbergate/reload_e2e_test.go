package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/component/servertest"
)

// binBuildFlags are extra go build flags for the binary under test
// (reload_race_test.go adds -race when the tests run with it).
var binBuildFlags []string

// buildBinary builds cmd/jabbergate into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "jabbergate")
	args := append([]string{"build", "-o", bin}, binBuildFlags...)
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binProc is the real jabbergate binary running `run -config FILE`.
type binProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *lockedBuffer
	http string
	done chan error
}

func startBinary(t *testing.T, bin, config, httpAddr string, env ...string) *binProc {
	t.Helper()
	p := &binProc{t: t, log: &lockedBuffer{}, http: httpAddr, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "run", "-config", config)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(e2eWait):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("jabbergate log:\n%s", p.log.String())
		}
	})
	return p
}

func (p *binProc) get(path string) (int, string) {
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// waitReady waits until /readyz answers 200.
func (p *binProc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(e2eWait + 40*time.Second) // a link may wait out a conflict backoff
	for time.Now().Before(deadline) {
		if code, _ := p.get("/readyz"); code == http.StatusOK {
			return
		}
		select {
		case err := <-p.done:
			p.t.Fatalf("jabbergate exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	_, body := p.get("/readyz")
	p.t.Fatalf("jabbergate not ready: %s", body)
}

// logLines returns the JSON log lines whose msg is msg.
func (p *binProc) logLines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.log.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// waitLog waits until there are at least n log lines with msg.
func (p *binProc) waitLog(msg string, n int) []map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		if l := p.logLines(msg); len(l) >= n {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("no %d log lines %q within %v", n, msg, e2eWait)
	return nil
}

// connects returns the stream ids of the component links connected so
// far, by bridge domain.
func (p *binProc) connects() map[string][]string {
	out := map[string][]string{}
	for _, l := range p.logLines("component link connected") {
		d, _ := l["bridge"].(string)
		id, _ := l["stream_id"].(string)
		out[d] = append(out[d], id)
	}
	return out
}

func (p *binProc) hup() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		p.t.Fatal(err)
	}
}

// discoName asks a domain's disco#info and returns the result as text.
func discoName(x *xclient, domain, id string) string {
	x.send(`<iq type='get' id='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, id, domain)
	r := x.waitIQ(id)
	return fmt.Sprintf("%s %s", r.Type, r.Query)
}

// TestReloadOnSIGHUP runs the real binary against a real Prosody and
// reloads its config: a changed bridge restarts with the new setting while
// the unchanged one keeps its link (same stream, one connection); a broken
// file is refused with its file:line and the old config keeps running;
// bridges are removed and added; log level and access apply in place; a
// change of http.listen is logged as needing a restart; systemd hears
// RELOADING=1 and READY=1.
func TestReloadOnSIGHUP(t *testing.T) {
	const (
		a, b, c = "a.localhost", "b.localhost", "c.localhost"
		secret  = "reload-secret-0123456789"
	)
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{a: secret, b: secret, c: secret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	bin := buildBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "jabbergate.yaml")
	httpAddr := freeAddr(t)
	write := func(bridgesYAML, extra string) {
		t.Helper()
		y := fmt.Sprintf(`xmpp:
  server: %s
  ping_interval: 5s
bridges:
%s
store:
  backend: bolt
  path: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
log:
  format: json
%s`, srv.ComponentAddr, bridgesYAML, filepath.Join(dir, "jg.db"), httpAddr, extra)
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bridge := func(domain, name string) string {
		return fmt.Sprintf("  - network: echo\n    domain: %s\n    secret: %s\n    name: %q\n", domain, secret, name)
	}
	write(bridge(a, "Aye")+bridge(b, "Bee One"), "  level: info\n")

	notify, notifyPath := notifyListener(t, "")
	p := startBinary(t, bin, file, httpAddr, "NOTIFY_SOCKET="+notifyPath)
	p.waitReady()
	waitDatagram(t, notify, "READY=1")
	first := p.connects()
	if len(first[a]) != 1 || len(first[b]) != 1 {
		t.Fatalf("links at start: %v", first)
	}
	alice := dialClient(t, srv, "alice", "alicepw", "reload")
	if d := discoName(alice, b, "d1"); !strings.Contains(d, "Bee One") {
		t.Fatalf("disco#info of %s: %s", b, d)
	}
	// alice registers with A and B and sees both online.
	for _, d := range []string{a, b} {
		alice.send(`<iq type='set' id='r-%s' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, d, d)
		if r := alice.waitIQ("r-" + d); r.Type != "result" {
			t.Fatalf("register with %s: %+v", d, r)
		}
		alice.waitPresence("subscribe from "+d, d, "subscribe")
		alice.send(`<presence type='subscribed' to='%s'/>`, d)
		alice.send(`<presence type='subscribe' to='%s'/>`, d)
		alice.waitPresence(d+" online", d, "")
	}
	alice.send(`<iq type='get' id='c0' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`, a)
	if r := alice.waitIQ("c0"); strings.Contains(string(r.Query), "Statistics") {
		t.Fatalf("alice sees admin commands before being made an admin: %s", r.Query)
	}

	// Let both bridges finish populating alice's roster (a few seconds
	// after registering): a stop cuts that short, on SIGTERM as on a reload.
	p.waitLog("roster population", 2)

	// 1. Change bridge B only.
	write(bridge(a, "Aye")+bridge(b, "Bee Two"), "  level: info\n")
	p.hup()
	waitDatagram(t, notify, "RELOADING=1")
	waitDatagram(t, notify, "READY=1")
	done := p.waitLog("configuration reloaded", 1)
	if r, _ := done[0]["restarted"].([]any); len(r) != 1 || r[0] != b {
		t.Errorf("restarted = %v, want [%s]", done[0]["restarted"], b)
	}
	p.waitReady()
	// B said goodbye and came back, as on a restart; A said nothing.
	alice.waitPresence(b+" goodbye", b, "unavailable")
	alice.waitPresence(b+" back", b, "")
	if d := discoName(alice, a, "d2a"); !strings.Contains(d, "Aye") {
		t.Errorf("disco#info of %s after reload: %s", a, d)
	}
	alice.mu.Lock()
	for _, st := range alice.seen {
		if pr, ok := st.(xmpp.Presence); ok && bare(pr.From) == a && pr.Type == "unavailable" {
			t.Errorf("the unchanged bridge %s sent unavailable: %+v", a, pr)
		}
	}
	alice.mu.Unlock()
	now := p.connects()
	if len(now[a]) != 1 || now[a][0] != first[a][0] {
		t.Errorf("bridge %s was reconnected by a change to %s: stream ids %v", a, b, now[a])
	}
	if len(now[b]) != 2 || now[b][0] == now[b][1] {
		t.Errorf("bridge %s was not reconnected: stream ids %v", b, now[b])
	}
	if d := discoName(alice, b, "d2"); !strings.Contains(d, "Bee Two") {
		t.Errorf("disco#info of %s after reload: %s", b, d)
	}
	if d := discoName(alice, a, "d3"); !strings.Contains(d, "Aye") {
		t.Errorf("disco#info of %s after reload: %s", a, d)
	}

	// 2. A broken file: refused with file:line, nothing changes.
	write(bridge(a, "Aye")+bridge(b, "Bee Three"), "  level: loud\n")
	lines := strings.Split(string(must(os.ReadFile(file))), "\n")
	badLine := 0
	for i, l := range lines {
		if strings.Contains(l, "loud") {
			badLine = i + 1
		}
	}
	p.hup()
	waitDatagram(t, notify, "RELOADING=1")
	waitDatagram(t, notify, "READY=1")
	refused := p.waitLog("configuration reload refused: the running configuration stays in force", 1)
	if prob, _ := refused[0]["problem"].(string); !strings.Contains(prob, fmt.Sprintf("%s:%d:", file, badLine)) || !strings.Contains(prob, "level") {
		t.Errorf("refusal does not name %s:%d: %v", file, badLine, refused[0])
	}
	if len(p.logLines("configuration reloaded")) != 1 {
		t.Error("a broken file was applied")
	}
	if code, body := p.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a refused reload: %d %s", code, body)
	}
	if d := discoName(alice, b, "d4"); !strings.Contains(d, "Bee Two") {
		t.Errorf("disco#info of %s after a refused reload: %s", b, d)
	}

	// 3. Remove B, add C, debug logs, a new admin, and an http.listen
	// change that needs a restart.
	write(bridge(a, "Aye")+bridge(c, "Sea"), "  level: debug\n")
	y := strings.Replace(string(must(os.ReadFile(file))), "listen: "+httpAddr, "listen: "+freeAddr(t), 1)
	y = strings.Replace(y, "  allowed_domains: [localhost]\n", "  allowed_domains: [localhost]\n  admins: [alice@localhost]\n", 1)
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	p.hup()
	waitDatagram(t, notify, "RELOADING=1")
	waitDatagram(t, notify, "READY=1")
	done = p.waitLog("configuration reloaded", 2)
	if r, _ := done[1]["removed"].([]any); len(r) != 1 || r[0] != b {
		t.Errorf("removed = %v", done[1]["removed"])
	}
	if r, _ := done[1]["added"].([]any); len(r) != 1 || r[0] != c {
		t.Errorf("added = %v", done[1]["added"])
	}
	restart := p.waitLog("configuration change ignored until jabbergate is restarted (restart required)", 1)
	if restart[0]["key"] != "http" {
		t.Errorf("restart required for %v, want http", restart[0]["key"])
	}
	p.waitReady() // the listener did not move
	now = p.connects()
	if len(now[a]) != 1 || len(now[c]) != 1 || len(now[b]) != 2 {
		t.Errorf("links after remove/add: %v", now)
	}
	if code, body := p.get("/metrics"); code != 200 || strings.Contains(body, `bridge="`+b+`"`) || !strings.Contains(body, `jabbergate_link_up{bridge="`+c+`"} 1`) {
		t.Errorf("metrics after remove/add: %d\n%s", code, grepLines(body, "jabbergate_link_up"))
	}
	// The binary exports the outbox age and session failure series for
	// every running bridge.
	_, body := p.get("/metrics")
	for _, want := range []string{
		`jabbergate_outbox_oldest_age_seconds{bridge="` + a + `"} 0`,
		`jabbergate_outbox_oldest_age_seconds{bridge="` + c + `"} 0`,
		`jabbergate_legacy_session_failures_total{bridge="` + a + `",network="echo",reason="unauthorized"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s\n%s", want, grepLines(body, "jabbergate_outbox_oldest_age_seconds"))
		}
	}
	if d := discoName(alice, c, "d5"); !strings.Contains(d, "Sea") {
		t.Errorf("disco#info of %s: %s", c, d)
	}
	// Debug lines now appear, and alice is an admin on the bridge that
	// was not restarted.
	p.waitLog("log level changed", 1)
	alice.send(`<iq type='get' id='c1' to='%s'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`, a)
	if r := alice.waitIQ("c1"); !strings.Contains(string(r.Query), "Statistics") {
		t.Errorf("admin commands of %s after reload: %s", a, r.Query)
	}

	// Structured logs: events about a user carry the bridge, the network
	// and the hashed account key; no JID and no secret anywhere.
	log := p.log.String()
	if strings.Contains(log, secret) || strings.Contains(log, "alice@localhost") || strings.Contains(log, "alicepw") {
		t.Error("the log shows a secret or a JID")
	}
	userKey := regexp.MustCompile(`^[a-z2-7]{16}$`)
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			t.Errorf("not a JSON log line: %s", sc.Text())
			continue
		}
		if u, ok := m["user"]; ok {
			if s, _ := u.(string); !userKey.MatchString(s) || m["bridge"] == nil || m["network"] == nil {
				t.Errorf("user event without bridge, network and hashed user: %s", sc.Text())
			}
		}
	}

	// SIGTERM still stops cleanly.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(e2eWait):
		t.Fatal("jabbergate did not stop on SIGTERM")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
