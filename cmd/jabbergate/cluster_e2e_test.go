package main

// Scale-out end to end: several real jabbergate processes on one real
// redis-server, attached to a real ejabberd (several links for one domain)
// or Prosody (active/standby), one of them killed with SIGKILL.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppo/go-xmpp"

	"github.com/jabbergate/jabbergate/bridges/store"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/component/servertest"
)

const (
	clusterPrefix = "cl"
	clusterTTL    = 3 * time.Second
)

// clusterConfig writes the config of one instance and returns its path.
func clusterConfig(t *testing.T, srv *servertest.Server, redisURL, instance, httpAddr string, multiLink bool) string {
	t.Helper()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	y := fmt.Sprintf(`xmpp:
  server: %s
  ping_interval: 5s
bridges:
  - network: echo
    domain: %s
    secret: %s
    multi_link: %v
store:
  backend: redis
  redis:
    url: %s
    prefix: %s
vault:
  key: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
  rate_limit:
    per_second: -1
log:
  format: json
cluster:
  enabled: true
  instance: %s
  lease_ttl: %s
`, srv.ComponentAddr, gwDomain, gwSecret, multiLink, redisURL, clusterPrefix, key, httpAddr, instance, clusterTTL)
	path := filepath.Join(t.TempDir(), instance+".yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openLeases(t *testing.T, url string) store.Leaser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redisstore.Open(ctx, url, redisstore.Options{Prefix: clusterPrefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func holderOf(l store.Leaser, name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, _, err := l.Holder(ctx, name)
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, "#") // link leases: "<instance>#<process nonce>"
	return h
}

func registerClient(t *testing.T, x *xclient) {
	t.Helper()
	x.send(`<iq type='set' id='reg' to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>`, gwDomain)
	if r := x.waitIQ("reg"); r.Type != "result" {
		t.Fatalf("%s: register = %+v", x.jid, r)
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *binProc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(e2eWait):
		p.t.Fatal("killed process did not exit")
	}
}

// echoTally counts the echoes one client receives, by body.
type echoTally struct {
	mu     sync.Mutex
	bodies map[string]int             // echoes received per body
	ids    map[string]map[string]bool // stanza ids seen per body
	order  map[string]int             // highest sequence number seen per chat
	late   int                        // echoes that arrived after a later one
	errors []string
}

func newTally() *echoTally {
	return &echoTally{bodies: map[string]int{}, ids: map[string]map[string]bool{}, order: map[string]int{}}
}

// collect reads x's stanzas until stop closes.
func (e *echoTally) collect(x *xclient, stop <-chan struct{}) {
	hello := "hello@" + gwDomain
	for {
		select {
		case <-stop:
			return
		case <-x.done:
			return
		case st := <-x.ch:
			m, ok := st.(xmpp.Chat)
			if !ok || bare(m.Remote) != hello {
				continue
			}
			e.mu.Lock()
			if m.Type == "error" {
				e.errors = append(e.errors, m.ID+": "+errorCondition(m))
			} else if strings.HasPrefix(m.Text, "c|") {
				e.bodies[m.Text]++
				if e.ids[m.Text] == nil {
					e.ids[m.Text] = map[string]bool{}
				}
				e.ids[m.Text][m.ID] = true
				var user string
				var seq int
				if _, err := fmt.Sscanf(strings.ReplaceAll(m.Text, "|", " "), "c %s %d", &user, &seq); err == nil {
					if seq < e.order[user] {
						e.late++
					}
					e.order[user] = max(e.order[user], seq)
				}
			}
			e.mu.Unlock()
		}
	}
}

func (e *echoTally) has(body string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bodies[body] > 0
}

// TestClusterEjabberdKill runs three instances on one Redis, all linked to
// ejabberd for the same domain; six users write to echo contacts without
// pause; the instance running the most accounts is killed with SIGKILL.
// Every message must be echoed exactly once in the client's view, and the
// killed instance's accounts must move to the survivors.
//
// XEP-0114 has no acknowledgement: stanzas ejabberd had routed into the
// killed process's socket are gone with it. Like a client whose message
// got no answer, the test resends those once with the same id and
// origin-id; the gateway drops a resend of a message it had queued.
func TestClusterEjabberdKill(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	accounts := map[string]string{}
	for _, u := range users {
		accounts[u] = u + "pw"
	}
	srv := servertest.Start(t, "ejabberd", servertest.Options{
		Components: map[string]string{gwDomain: gwSecret},
		Users:      accounts,
	})
	url := redistest.Start(t)
	bin := buildBinary(t)
	leases := openLeases(t, url)

	names := []string{"gw1", "gw2", "gw3"}
	procs := map[string]*binProc{}
	for _, n := range names {
		h := freeAddr(t)
		procs[n] = startBinary(t, bin, clusterConfig(t, srv, url, n, h, true), h)
	}
	for _, n := range names {
		procs[n].waitReady()
	}

	clients := map[string]*xclient{}
	for _, u := range users {
		x := dialClient(t, srv, u, accounts[u], "cl")
		registerClient(t, x)
		clients[u] = x
	}
	leaseOf := func(u string) string { return "acct:" + gwDomain + "|" + srv.JID(u) }
	owners := map[string]string{}
	deadline := time.Now().Add(e2eWait)
	for _, u := range users {
		for owners[u] = holderOf(leases, leaseOf(u)); owners[u] == ""; owners[u] = holderOf(leases, leaseOf(u)) {
			if time.Now().After(deadline) {
				t.Fatalf("account %s has no lease holder", u)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	count := map[string]int{}
	for _, o := range owners {
		count[o]++
	}
	victim := slices.MaxFunc(names, func(a, b string) int { return count[a] - count[b] })
	t.Logf("account owners before the kill: %v; killing %s", owners, victim)

	tallies := map[string]*echoTally{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, u := range users {
		tl, x := newTally(), clients[u]
		tallies[u] = tl
		wg.Add(1)
		go func() { defer wg.Done(); tl.collect(x, stop) }()
	}
	defer func() { close(stop); wg.Wait() }()

	const perUser = 120
	body := func(u string, i int) string { return fmt.Sprintf("c|%s|%d", u, i) }
	sendMsg := func(u string, i int) {
		clients[u].send(`<message type='chat' id='%s-%d' to='hello@%s'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='%s-%d'/></message>`,
			u, i, gwDomain, body(u, i), u, i)
	}
	killed := time.Time{}
	moved := make(chan time.Duration, 1) // how long the victim's accounts took to move
	watchMoves := func() {
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			done := true
			for u, o := range owners {
				if h := holderOf(leases, leaseOf(u)); o == victim && (h == "" || h == victim) {
					done = false
				}
			}
			if done {
				moved <- time.Since(killed)
				return
			}
		}
		close(moved)
	}
	for i := range perUser {
		for _, u := range users {
			sendMsg(u, i)
		}
		if i == perUser/3 {
			procs[victim].kill9()
			killed = time.Now()
			go watchMoves()
			t.Logf("%s killed after %d messages per user", victim, i+1)
		}
		time.Sleep(15 * time.Millisecond)
	}
	sent := perUser * len(users)

	missing := func() []string {
		var out []string
		for _, u := range users {
			for i := range perUser {
				if !tallies[u].has(body(u, i)) {
					out = append(out, fmt.Sprintf("%s-%d", u, i))
				}
			}
		}
		return out
	}
	waitAll := func(d time.Duration) []string {
		end := time.Now().Add(d)
		for {
			m := missing()
			if len(m) == 0 || time.Now().After(end) {
				return m
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	lostFirst := waitAll(3*clusterTTL + 20*time.Second)
	for _, id := range lostFirst {
		u, n, _ := strings.Cut(id, "-")
		var i int
		fmt.Sscan(n, &i)
		sendMsg(u, i)
	}
	lost := waitAll(30 * time.Second)
	time.Sleep(clusterTTL) // late duplicates, if any, arrive now

	received, dupSameID, dupNewID, late := 0, 0, 0, 0
	var errs []string
	for _, u := range users {
		tl := tallies[u]
		tl.mu.Lock()
		for b, n := range tl.bodies {
			received++
			if len(tl.ids[b]) > 1 {
				dupNewID += len(tl.ids[b]) - 1
			}
			dupSameID += n - len(tl.ids[b])
		}
		late += tl.late
		errs = append(errs, tl.errors...)
		tl.mu.Unlock()
	}
	t.Logf("sent %d, received %d distinct, lost %d (%d before the client resent the unanswered ones: %v), duplicated %d with a new id, %d replays of an id already delivered (clients drop these), %d echoes out of order, %d error replies %v",
		sent, received, len(lost), len(lostFirst), lostFirst, dupNewID, dupSameID, late, len(errs), errs)
	if len(lost) > 0 {
		t.Errorf("%d messages never echoed: %v", len(lost), lost)
	}
	if dupNewID > 0 {
		t.Errorf("%d messages echoed twice under different ids", dupNewID)
	}

	// The killed instance's accounts moved; nothing is left with it.
	after := map[string]string{}
	for _, u := range users {
		after[u] = holderOf(leases, leaseOf(u))
		if owners[u] == victim && (after[u] == victim || after[u] == "") {
			t.Errorf("account %s still with %q after the kill", u, after[u])
		}
	}
	if d, ok := <-moved; ok {
		t.Logf("account owners after the kill: %v; the killed instance's accounts moved %v after the kill (lease ttl %v)", after, d.Round(100*time.Millisecond), clusterTTL)
	} else {
		t.Errorf("the killed instance's accounts did not all move within 60 s")
	}
	for _, n := range names {
		if n == victim {
			continue
		}
		if code, body := procs[n].get("/readyz"); code != 200 {
			t.Errorf("%s not ready after the kill: %s", n, body)
		}
	}
}

// TestClusterProsodyStandby runs two instances against Prosody, which
// accepts one component link per domain: only the holder of the link lease
// connects; after it is killed with SIGKILL the standby connects and
// serves, within a lease period and a check.
func TestClusterProsodyStandby(t *testing.T) {
	srv := servertest.Start(t, "prosody", servertest.Options{
		Components: map[string]string{gwDomain: gwSecret},
		Users:      map[string]string{"alice": "alicepw"},
	})
	url := redistest.Start(t)
	bin := buildBinary(t)
	leases := openLeases(t, url)
	h1, h2 := freeAddr(t), freeAddr(t)
	p1 := startBinary(t, bin, clusterConfig(t, srv, url, "gw1", h1, false), h1)
	p1.waitReady()
	p2 := startBinary(t, bin, clusterConfig(t, srv, url, "gw2", h2, false), h2)
	p2.waitLog("cluster: standby; the component link is held by another instance", 1)
	if h := holderOf(leases, "link:"+gwDomain); h != "gw1" {
		t.Fatalf("link lease held by %q, want gw1", h)
	}

	alice := dialClient(t, srv, "alice", "alicepw", "cl")
	registerClient(t, alice)
	hello := "hello@" + gwDomain
	alice.send(`<message type='chat' id='m0' to='%s'><body>before</body></message>`, hello)
	alice.waitChat("echo before the kill", func(m xmpp.Chat) bool { return m.Text == "before" })
	if n := len(p2.connects()[gwDomain]); n != 0 {
		t.Fatalf("the standby connected %d times while the active was up", n)
	}

	p1.kill9()
	killed := time.Now()
	p2.waitLog("cluster: link lease acquired; this instance is active", 1)
	p2.waitLog("component link connected", 1)
	takeover := time.Since(killed)
	// Prosody answers service-unavailable while no component is linked:
	// send until the echo comes, as a client would retry.
	var echoed bool
	for i := 0; i < 20 && !echoed; i++ {
		text := fmt.Sprintf("after %d", i)
		alice.send(`<message type='chat' id='a%d' to='%s'><body>%s</body></message>`, i, hello, text)
		end := time.Now().Add(time.Second)
		for time.Now().Before(end) && !echoed {
			alice.mu.Lock()
			for _, st := range alice.seen {
				if m, ok := st.(xmpp.Chat); ok && strings.HasPrefix(m.Text, "after ") && m.Type != "error" {
					echoed = true
				}
			}
			alice.mu.Unlock()
			select {
			case st := <-alice.ch:
				alice.mu.Lock()
				alice.seen = append(alice.seen, st)
				alice.mu.Unlock()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if !echoed {
		t.Fatal("no echo from the standby after the active was killed")
	}
	t.Logf("standby linked %v after the kill (lease ttl %v), and echoes", takeover.Round(100*time.Millisecond), clusterTTL)
	if h := holderOf(leases, "link:"+gwDomain); h != "gw2" {
		t.Errorf("link lease held by %q after the takeover, want gw2", h)
	}
}

// TestBoltSecondProcessRefused: a second process on the same bolt file
// exits at once with status 78 (exitConfig) and says the file is in use, and cluster
// mode on bolt is refused by the config check.
func TestBoltSecondProcessRefused(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "jg.db")
	write := func(name, httpAddr, extra string) string {
		y := fmt.Sprintf(`xmpp:
  server: %s
bridges:
  - network: echo
    domain: %s
    secret: %s
store:
  backend: bolt
  path: %s
http:
  listen: %s
access:
  allowed_domains: [localhost]
%s`, freeAddr(t), gwDomain, gwSecret, db, httpAddr, extra)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h1 := freeAddr(t)
	p1 := startBinary(t, bin, write("one.yaml", h1, ""), h1)
	deadline := time.Now().Add(e2eWait)
	for {
		if code, _ := p1.get("/healthz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first process never served /healthz")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "run", "-config", write("two.yaml", freeAddr(t), "")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitConfig || !strings.Contains(string(out), "in use by another jabbergate process") {
		t.Fatalf("second process: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, bin, "check-config", "-config", write("three.yaml", freeAddr(t), "cluster:\n  enabled: true\n")).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != exitConfig || !strings.Contains(string(out), "cluster.enabled: needs store.backend: redis") {
		t.Fatalf("cluster on bolt: %v\n%s", err, out)
	}
}
