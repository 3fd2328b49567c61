// Command jgbench is Jabbergate's end-to-end load tool.
//
// For each XMPP server kind it starts a private Prosody or ejabberd on
// loopback (component/servertest) — or, with -attach, uses a server that is
// already running — the jabbergate binary with the echo network (bolt
// store, -store pebble, or -store redis: a redis-server it starts) as
// echo.localhost, and its own "limit" component (a child process: `jgbench
// limit`) as limit.localhost, plus same.localhost, the limit answering
// disco#info with the gateway's own reply. The load comes either from another component,
// load.localhost (-via component, the default: the cheapest path for the
// server), or from c2s users jgb0…jgbN-1, one client connection each (-via
// c2s: the path real users take, through the server's c2s sessions). It
// drives, with at most -window requests outstanding:
//
//   - ping:    iq ping round trips to the component domain,
//   - disco:   disco#info round trips to the component domain,
//   - message: messages to contacts c<k>@domain and their echoes back
//     (through the gateway: outbox, echo network, inbox, barrier).
//
// Each (server, kind, run) measures the limit component and the gateway
// side by side and prints one JSON line per measurement; the gateway's line
// carries its ratio to the limit measured in the same run (and for disco
// its ratio to the same-reply limit). `jgbench median` turns those lines
// into one line of medians per (server, store, component, kind).
//
// Usage:
//
//	jgbench [-servers prosody,ejabberd] [-kinds ping,disco,message]
//	        [-n 20000] [-msgn 2000] [-warm 2000] [-warm-for 6s] [-window 64] [-runs 1]
//	        [-users 8] [-gateway bin/jabbergate] [-store bolt|pebble|redis]
//	        [-via component|c2s] [-profile DIR [-profile-for 5s]]
//	        [-attach HOST:PORT -attach-secret-file F [-attach-name N] [-attach-pids P,…]
//	         [-attach-c2s HOST:PORT -attach-domain D -attach-password-file F]]
//	jgbench median < runs.jsonl
//	jgbench limit -addr HOST:PORT -domain D -secret S [-disco-query FILE]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store/redistest"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"github.com/jabbergate/jabbergate/component/servertest"
)

const (
	gwDomain    = "echo.localhost"
	limitDomain = "limit.localhost"
	sameDomain  = "same.localhost" // the limit answering disco#info with the gateway's own reply
	loadDomain  = "load.localhost"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "median" {
		os.Exit(runMedian(os.Stdin, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "limit" {
		os.Exit(runLimit(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	servers, kinds        []string
	n, msgN, warm, window int
	warmFor               time.Duration // least first warm-up time of iq kinds
	runs, users, contacts int
	gateway               string
	timeout               time.Duration
	keep                  bool
	profile               string        // directory for gateway CPU profiles ("" = none)
	profileFor            time.Duration // length of each profile
	httpPort              int           // the gateway's HTTP listener (pprof)
	store                 string        // the gateway's store: bolt, pebble or redis
	redisURL              string        // -store redis: the redis-server jgbench started
	via                   string        // how the load reaches the server: component or c2s

	// -attach: a server already running (not started by jgbench).
	attach         string // its XEP-0114 listener, host:port
	attachSecret   string // the secret of its four components (from -attach-secret-file)
	attachName     string // server name in the results
	attachPIDs     []int  // its processes, for CPU and RSS
	attachC2S      string // its c2s listener, host:port (-via c2s)
	attachDomain   string // its virtual host (-via c2s)
	attachPassword string // the password of jgb0…jgbN-1 there (-via c2s)
}

func run(args []string, stdout, stderr io.Writer) (code int) {
	fs := flag.NewFlagSet("jgbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("servers", "prosody,ejabberd", "server kinds to start")
	kinds := fs.String("kinds", "ping,disco,message", "load kinds")
	var c config
	fs.IntVar(&c.n, "n", 20000, "measured iq round trips per run")
	fs.IntVar(&c.msgN, "msgn", 2000, "measured echo messages per run")
	fs.IntVar(&c.warm, "warm", 2000, "warm-up requests before each measurement")
	fs.DurationVar(&c.warmFor, "warm-for", 6*time.Second, "ping and disco, first measurement of each component: keep warming up until this long has passed (steady state: see docs/performance.md)")
	fs.IntVar(&c.window, "window", 64, "outstanding requests")
	fs.IntVar(&c.runs, "runs", 1, "runs per (server, kind)")
	fs.IntVar(&c.users, "users", 8, "distinct senders (registered with the gateway)")
	fs.IntVar(&c.contacts, "contacts", 8, "distinct echo contacts for messages")
	fs.StringVar(&c.gateway, "gateway", "bin/jabbergate", "jabbergate binary")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound of one measurement")
	fs.StringVar(&c.store, "store", "bolt", "the gateway's store: bolt (a file), pebble (a directory) or redis (a redis-server jgbench starts, append-only file on)")
	fs.StringVar(&c.via, "via", "component", "how the load reaches the server: component (one XEP-0114 connection, load.localhost) or c2s (one client connection per user, jgb0…jgbN-1, SASL PLAIN)")
	fs.StringVar(&c.attach, "attach", "", "host:port of the XEP-0114 listener of a server already running, instead of starting Prosody and ejabberd (see docs/performance.md, Reproducing)")
	attachSecretFile := fs.String("attach-secret-file", "", "-attach: file holding the secret of the components echo.localhost, limit.localhost, same.localhost and load.localhost")
	fs.StringVar(&c.attachName, "attach-name", "attached", "-attach: the server's name in the results")
	attachPIDs := fs.String("attach-pids", "", "-attach: comma-separated PIDs of the server's processes, for its CPU and RSS (none: not reported)")
	fs.StringVar(&c.attachC2S, "attach-c2s", "", "-attach -via c2s: host:port of the server's c2s listener (plain TCP, SASL PLAIN)")
	fs.StringVar(&c.attachDomain, "attach-domain", "localhost", "-attach -via c2s: the virtual host of the users jgb0…jgbN-1")
	attachPasswordFile := fs.String("attach-password-file", "", "-attach -via c2s: file holding the password of the users jgb0…jgbN-1")
	fs.StringVar(&c.profile, "profile", "", "write a CPU profile of the gateway during each of its measurements into this directory (gateway-SERVER-KIND-RUN.pprof)")
	fs.DurationVar(&c.profileFor, "profile-for", 5*time.Second, "length of each -profile profile (from the start of the measurement)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.store != "bolt" && c.store != "pebble" && c.store != "redis" {
		fmt.Fprintf(stderr, "jgbench: -store %q: want bolt, pebble or redis\n", c.store)
		return 2
	}
	if c.via != "component" && c.via != "c2s" {
		fmt.Fprintf(stderr, "jgbench: -via %q: want component or c2s\n", c.via)
		return 2
	}
	if c.attach != "" {
		if err := c.readAttach(*attachSecretFile, *attachPIDs, *attachPasswordFile); err != nil {
			fmt.Fprintf(stderr, "jgbench: %v\n", err)
			return 2
		}
		*servers = c.attachName
	}
	c.servers = strings.Split(*servers, ",")
	c.kinds = strings.Split(*kinds, ",")
	gw, err := filepath.Abs(c.gateway)
	if err == nil {
		_, err = os.Stat(gw)
	}
	if err != nil {
		fmt.Fprintf(stderr, "jgbench: gateway binary: %v (run `make build`)\n", err)
		return 2
	}
	c.gateway = gw
	t := newShim(stderr)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(shimFatal); !ok {
				t.cleanup()
				panic(r)
			}
			code = 1
		}
		t.cleanup()
	}()
	for _, kind := range c.servers {
		benchServer(t, &c, kind, stdout, stderr)
	}
	return 0
}

// readAttach reads the -attach flags' files and PIDs into c.
func (c *config) readAttach(secretFile, pids, passwordFile string) error {
	read := func(flag, path string) (string, error) {
		if path == "" {
			return "", fmt.Errorf("-attach needs %s", flag)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: %s is empty", flag, path)
		}
		return v, nil
	}
	var err error
	if c.attachSecret, err = read("-attach-secret-file", secretFile); err != nil {
		return err
	}
	for _, f := range strings.FieldsFunc(pids, func(r rune) bool { return r == ',' || r == ' ' }) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return fmt.Errorf("-attach-pids: %q is not a PID", f)
		}
		c.attachPIDs = append(c.attachPIDs, pid)
	}
	if c.via == "c2s" {
		if c.attachC2S == "" {
			return fmt.Errorf("-attach -via c2s needs -attach-c2s (the server's c2s listener)")
		}
		if c.attachPassword, err = read("-attach-password-file", passwordFile); err != nil {
			return err
		}
	}
	return nil
}

// xmppServer is the server a run measures through: started by jgbench or
// attached to.
type xmppServer struct {
	compAddr, c2sAddr, domain string
	secret                    string // of every component
	password                  string // of the c2s users
	pids                      []int
}

// startServer starts a private server of kind, or returns the attached one.
func startServer(t *shim, c *config, kind string) xmppServer {
	if c.attach != "" {
		return xmppServer{compAddr: c.attach, c2sAddr: c.attachC2S, domain: c.attachDomain,
			secret: c.attachSecret, password: c.attachPassword, pids: c.attachPIDs}
	}
	s := xmppServer{secret: randomSecret(), password: randomSecret()}
	opts := servertest.Options{Components: map[string]string{
		gwDomain: s.secret, limitDomain: s.secret, sameDomain: s.secret, loadDomain: s.secret,
	}}
	if c.via == "c2s" {
		opts.Users = map[string]string{}
		for i := range c.users {
			opts.Users[c2sUser(i)] = s.password
		}
	}
	srv := servertest.Start(t, kind, opts)
	s.compAddr, s.c2sAddr, s.domain = srv.ComponentAddr, srv.C2SAddr, srv.Domain
	s.pids = pidsMentioning(srv.Dir)
	return s
}

// c2sUser is the localpart of c2s user i.
func c2sUser(i int) string { return fmt.Sprintf("jgb%d", i) }

// dialLoad opens the load connections: one component connection and c.users
// sender JIDs on it, or one c2s connection per user.
func dialLoad(t *shim, c *config, srv xmppServer) ([]*compConn, []string) {
	var conns []*compConn
	var from []string
	if c.via == "c2s" {
		for i := range c.users {
			conn, jid, err := dialC2S(srv.c2sAddr, srv.domain, c2sUser(i), srv.password, "jgbench")
			if err != nil {
				t.Fatalf("jgbench: c2s user %s@%s: %v", c2sUser(i), srv.domain, err)
			}
			t.Cleanup(func() { conn.Close() })
			conns, from = append(conns, conn), append(from, jid)
		}
		return conns, from
	}
	conn, err := dialComponent(srv.compAddr, loadDomain, srv.secret)
	if err != nil {
		t.Fatalf("jgbench: load component: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	for i := range c.users {
		from = append(from, fmt.Sprintf("u%d@%s/jgbench", i, loadDomain))
	}
	return []*compConn{conn}, from
}

func benchServer(t *shim, c *config, kind string, stdout, stderr io.Writer) {
	srv := startServer(t, c, kind)
	serverPIDs := srv.pids
	fmt.Fprintf(stderr, "jgbench: %s up (component %s, pids %v)\n", kind, srv.compAddr, serverPIDs)

	dir := t.TempDir()
	fmt.Fprintf(stderr, "jgbench: gateway and limit logs in %s (removed at exit)\n", dir)
	var storePIDs []int
	if c.store == "redis" {
		rs := redistest.StartServer(t)
		c.redisURL = rs.URL()
		storePIDs = []int{rs.PID()}
		fmt.Fprintf(stderr, "jgbench: redis-server at %s (pid %d)\n", rs.Addr(), rs.PID())
	}
	gwPID := startGateway(t, c, srv.compAddr, srv.secret, dir, srv.domain)
	limitPID := startLimit(t, srv.compAddr, srv.secret, dir, limitDomain)

	conns, from := dialLoad(t, c, srv)
	l := newLoader(conns, from, c.via == "c2s")
	seq := 0
	waitReady(t, l, gwDomain, &seq)
	waitReady(t, l, limitDomain, &seq)
	samePID := startLimit(t, srv.compAddr, srv.secret, dir, sameDomain, "-disco-query", gatewayDiscoQuery(t, l, dir))
	waitReady(t, l, sameDomain, &seq)
	register(t, l, from, &seq)

	warmedUp := map[string]bool{} // component domains given their first long warm-up
	for _, k := range c.kinds {
		n := c.n
		if k == "message" {
			n = c.msgN
		}
		type target struct {
			name, domain string
			pid          int
		}
		targets := []target{{"limit", limitDomain, limitPID}, {"gateway", gwDomain, gwPID}}
		if k == "disco" {
			// The limit with the gateway's reply: what the same bytes
			// cost the server, whatever the component does.
			targets = []target{targets[0], {"limit-same-reply", sameDomain, samePID}, targets[1]}
		}
		for r := 0; r < c.runs; r++ {
			var limitOps, sameOps float64
			for _, target := range targets {
				n, warm := n, c.warm
				if target.name != "gateway" {
					n = c.n // the limit is fast: always measure a long run
				} else if k == "message" {
					warm = min(c.warm, n/4+1)
				}
				warmed := time.Now()
				l.run(k, target.domain, seq, warm, c.window, c.contacts, c.timeout)
				seq += warm
				// iq round trips allocate little: a gateway needs seconds
				// of them to fill its heap up to its GC floor once, and
				// until then every allocation lands on memory the process
				// has never touched (page faults, span set-up) — a
				// start-up cost, not the steady state this measures. The
				// processes live on across runs and kinds: once each.
				for k != "message" && !warmedUp[target.domain] && time.Since(warmed) < c.warmFor {
					chunk := max(warm, 2000)
					l.run(k, target.domain, seq, chunk, c.window, c.contacts, c.timeout)
					seq += chunk
				}
				if k != "message" {
					warmedUp[target.domain] = true
				}
				pids := append(append([]int{target.pid}, serverPIDs...), storePIDs...)
				before := sampleCPU(pids)
				var outBefore map[string]float64
				if target.name == "gateway" {
					outBefore = stanzasOut(c.httpPort)
				}
				var profiled chan struct{}
				if c.profile != "" && target.name == "gateway" {
					profiled = profileGateway(c, fmt.Sprintf("gateway-%s-%s-%d.pprof", kind, k, r), stderr)
				}
				res := l.run(k, target.domain, seq, n, c.window, c.contacts, c.timeout)
				seq += n
				after := sampleCPU(pids)
				line := report(kind, target.name, k, c.window, n, r, res, before, after, target.pid, serverPIDs)
				if c.via != "component" {
					line.Via = c.via
				}
				if target.name == "gateway" {
					line.OutPerOp = perOp(outBefore, stanzasOut(c.httpPort), res.Done)
					line.Store = c.store
					for _, p := range storePIDs {
						line.StoreCPUs += after.proc[p] - before.proc[p]
					}
					line.StoreCPUs = round(line.StoreCPUs, 3)
				}
				switch {
				case target.name == "limit":
					limitOps = line.OpsPerS
				case target.name == "limit-same-reply":
					sameOps = line.OpsPerS
				case limitOps > 0:
					line.RatioToLimit = round(line.OpsPerS/limitOps, 3)
					if sameOps > 0 {
						line.RatioToSameReply = round(line.OpsPerS/sameOps, 3)
					}
				}
				b, _ := json.Marshal(line)
				fmt.Fprintln(stdout, string(b))
				if profiled != nil {
					<-profiled
				}
			}
		}
	}
}

// result is one JSON line.
type result struct {
	Server    string `json:"server"`
	Component string `json:"component"`
	Kind      string `json:"kind"`
	// Via is "c2s" when the load came from client connections (-via c2s);
	// empty for the component connection.
	Via         string  `json:"via,omitempty"`
	Window      int     `json:"window"`
	N           int     `json:"n"`
	Run         int     `json:"run"`
	Done        int     `json:"done"`
	Errors      int     `json:"errors,omitempty"`
	TimedOut    bool    `json:"timed_out,omitempty"`
	OpsPerS     float64 `json:"ops_per_s"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	CompCPUs    float64 `json:"component_cpu_s"`
	CompCPUusOp float64 `json:"component_cpu_us_per_op"`
	CompRSSKiB  int     `json:"component_peak_rss_kib"`
	// CompReadsOp and CompWritesOp are the component's read and write
	// system calls (socket, file; /proc/PID/io) per op: how well it
	// batches its I/O.
	CompReadsOp  float64 `json:"component_reads_per_op"`
	CompWritesOp float64 `json:"component_writes_per_op"`
	ServerCPUs   float64 `json:"server_cpu_s"`
	ServerRSSKiB int     `json:"server_peak_rss_kib"`
	HostIdlePct  float64 `json:"host_idle_pct"`
	// Store (gateway lines): bolt, pebble or redis; StoreCPUs is redis-server's
	// CPU over the measured phase.
	Store        string  `json:"store,omitempty"`
	StoreCPUs    float64 `json:"store_cpu_s,omitempty"`
	RatioToLimit float64 `json:"ratio_to_limit,omitempty"`
	// RatioToSameReply (disco): the gateway's ops/s over those of the
	// limit answering with the gateway's own disco#info reply.
	RatioToSameReply float64 `json:"ratio_to_same_reply,omitempty"`
	ElapsedS         float64 `json:"elapsed_s"`
	// OutPerOp (gateway lines): the stanzas the gateway wrote per op, by
	// kind (its jabbergate_stanzas_total), e.g. the barrier pings of echo.
	OutPerOp map[string]float64 `json:"gateway_out_per_op,omitempty"`
}

// stanzasOut reads the gateway's jabbergate_stanzas_total{direction="out"}
// by kind from its /metrics (nil when it cannot).
func stanzasOut(port int) map[string]float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "jabbergate_stanzas_total{") || !strings.Contains(line, `direction="out"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `kind="`)
		kind, _, _ := strings.Cut(rest, `"`)
		_, value, _ := strings.Cut(line, "} ")
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[kind] += v
		}
	}
	return out
}

// perOp is (after − before) / ops by key, rounded.
func perOp(before, after map[string]float64, ops int) map[string]float64 {
	if after == nil || ops == 0 {
		return nil
	}
	out := map[string]float64{}
	for k, v := range after {
		out[k] = round((v-before[k])/float64(ops), 3)
	}
	return out
}

func report(server, comp, kind string, window, n, run int, r loadResult, before, after cpuSample, compPID int, serverPIDs []int) result {
	el := r.Elapsed.Seconds()
	compCPU := after.proc[compPID] - before.proc[compPID]
	var srvCPU float64
	for _, p := range serverPIDs {
		srvCPU += after.proc[p] - before.proc[p]
	}
	res := result{Server: server, Component: comp, Kind: kind, Window: window, N: n, Run: run, Done: r.Done,
		Errors: r.Errors, TimedOut: r.TimedOut, ElapsedS: round(el, 3),
		P50us: r.pct(0.5), P99us: r.pct(0.99), P999us: r.pct(0.999),
		CompCPUs: round(compCPU, 3), ServerCPUs: round(srvCPU, 3),
		CompRSSKiB: peakRSS(compPID)}
	if el > 0 {
		res.OpsPerS = round(float64(r.Done)/el, 1)
	}
	if r.Done > 0 {
		res.CompCPUusOp = round(compCPU*1e6/float64(r.Done), 2)
		res.CompReadsOp = round((after.syscalls[compPID].reads-before.syscalls[compPID].reads)/float64(r.Done), 3)
		res.CompWritesOp = round((after.syscalls[compPID].writes-before.syscalls[compPID].writes)/float64(r.Done), 3)
	}
	for _, p := range serverPIDs {
		res.ServerRSSKiB += peakRSS(p)
	}
	if tot := after.hostTotal - before.hostTotal; tot > 0 {
		res.HostIdlePct = round(100*(after.hostIdle-before.hostIdle)/tot, 1)
	}
	return res
}

// waitReady pings domain until it answers with a result (the component is
// connected and routed), for at most 30 s.
func waitReady(t *shim, l *loader, domain string, seq *int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := l.run("ping", domain, *seq, 1, 1, 1, 2*time.Second)
		*seq++
		if r.Done == 1 && r.Errors == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("jgbench: %s does not answer pings", domain)
}

// register registers every sender with the gateway (the echo network takes
// an empty form).
func register(t *shim, l *loader, from []string, seq *int) {
	done := make(chan string, len(from))
	l.other = func(el []byte) {
		if strings.HasPrefix(componenttest.RawAttr(el, "id"), "reg") {
			done <- componenttest.RawAttr(el, "type")
		}
	}
	defer func() { l.other = nil }()
	for i := range from {
		l.conn(i).write(fmt.Appendf(nil, "<iq type='set' id='reg%d'%s to='%s'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query></iq>", i, l.fromAttr(i), gwDomain), true)
	}
	for range from {
		select {
		case typ := <-done:
			if typ != "result" {
				t.Fatalf("jgbench: registration with the gateway: %s", typ)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("jgbench: registration with the gateway timed out")
		}
	}
	time.Sleep(500 * time.Millisecond) // let the sessions open
}

// startGateway starts the gateway on compAddr; it accepts users of
// loadDomain and of userDomain (c2s users).
func startGateway(t *shim, c *config, compAddr, secret, dir, userDomain string) int {
	c.httpPort = freePort(t)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	cfg := filepath.Join(dir, "jabbergate.yaml")
	yaml := fmt.Sprintf(`xmpp:
  server: %s
bridges:
  - network: echo
    domain: %s
    secret_file: %s
store:
%s
http:
  listen: 127.0.0.1:%d%s
access:
  allowed_domains: [%s, %s]
  rate_limit: {per_second: -1} # the load is far above any per-user limit
log:
  level: warn
  format: text
`, compAddr, gwDomain, secretFile, storeYAML(c, dir), c.httpPort, pprofYAML(c), loadDomain, userDomain)
	os.WriteFile(cfg, []byte(yaml), 0o600)
	return startChild(t, dir, "gateway", c.gateway, "run", "-config", cfg)
}

func startLimit(t *shim, compAddr, secret, dir, domain string, extra ...string) int {
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("jgbench: %v", err)
	}
	args := append([]string{"limit", "-addr", compAddr, "-domain", domain, "-secret", secret}, extra...)
	return startChild(t, dir, strings.TrimSuffix(domain, ".localhost"), self, args...)
}

// gatewayDiscoQuery asks the gateway for its disco#info and writes the
// <query/> of the answer, as received, into a file for the limit
// (-disco-query); it returns the file's path.
func gatewayDiscoQuery(t *shim, l *loader, dir string) string {
	got := make(chan []byte, 1)
	l.other = func(el []byte) {
		if componenttest.RawAttr(el, "id") == "jgbench-disco" {
			select {
			case got <- bytes.Clone(el):
			default:
			}
		}
	}
	defer func() { l.other = nil }()
	l.conn(0).write(fmt.Appendf(nil, "<iq type='get' id='jgbench-disco'%s to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", l.fromAttr(0), gwDomain), true)
	var el []byte
	select {
	case el = <-got:
	case <-time.After(10 * time.Second):
		t.Fatalf("jgbench: the gateway does not answer disco#info")
	}
	i, j := bytes.Index(el, []byte("<query")), bytes.LastIndex(el, []byte("</query>"))
	if i < 0 || j < i {
		t.Fatalf("jgbench: gateway disco#info without a query: %s", el)
	}
	path := filepath.Join(dir, "disco-query.xml")
	if err := os.WriteFile(path, el[i:j+len("</query>")], 0o600); err != nil {
		t.Fatalf("jgbench: %v", err)
	}
	return path
}

func startChild(t *shim, dir, name, bin string, args ...string) int {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatalf("jgbench: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("jgbench: start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return cmd.Process.Pid
}

func freePort(t *shim) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("jgbench: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// profileGateway fetches a CPU profile of the gateway (its /debug/pprof/
// endpoint, turned on by -profile) for c.profileFor into c.profile/name,
// in the background; the channel is closed when it is written.
func profileGateway(c *config, name string, stderr io.Writer) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", c.httpPort, max(1, int(c.profileFor.Seconds())))
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintf(stderr, "jgbench: profile: %v\n", err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(c.profile, name)
		err = os.MkdirAll(c.profile, 0o755)
		var f *os.File
		if err == nil {
			f, err = os.Create(path)
		}
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(stderr, "jgbench: profile %s: status %d, %v\n", path, resp.StatusCode, err)
			return
		}
		fmt.Fprintf(stderr, "jgbench: wrote %s\n", path)
	}()
	return done
}

// storeYAML is the gateway's store section for -store.
func storeYAML(c *config, dir string) string {
	if c.store == "redis" {
		// Redis needs a shared vault key; a new one in dir (created by
		// the gateway when missing).
		return "  backend: redis\n  redis:\n    url: " + c.redisURL + "\nvault:\n  key_file: " + filepath.Join(dir, "jabbergate.key")
	}
	if c.store == "pebble" {
		return "  backend: pebble\n  path: " + filepath.Join(dir, "jabbergate.pebble")
	}
	return "  backend: bolt\n  path: " + filepath.Join(dir, "jabbergate.db")
}

// pprofYAML turns the gateway's profiler on for -profile (only then, so
// that jgbench also runs gateways older than http.pprof).
func pprofYAML(c *config) string {
	if c.profile == "" {
		return ""
	}
	return "\n  pprof: true"
}
