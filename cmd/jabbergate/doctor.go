package main

// jabbergate doctor: connect to the configured XMPP server once per bridge
// and report, one check per line, what works and what the admin must
// change, with the exact server config lines where they help.
//
//	jabbergate doctor -config FILE [-json] [-check-accounts] [-force-link] [-timeout 5s]
//
// Checks: store (bolt file and bbolt's consistency check / Redis PING and
// AOF), vault key file, media
// (media.dir, media.base_url), and per
// bridge: link (TCP reach and handshake, stream errors explained), XEP-0356
// privileges (advertisement awaited up to 2 s), a ping round trip to the
// server domain, HTTP upload among the server's disco items, webhook URLs
// (options public_url, webhook_url; a URL the gateway's own http.listen
// serves is "not checked" while the gateway is stopped, since nothing can
// answer it then) and, with -check-accounts, the number of registered
// accounts. Exit status: 0 when no check FAILs, 1 when one does, 78
// (exitConfig) for usage errors and for a config file check-config
// refuses, including what it refuses as the file system is now
// (store.path, vault.key_file, also with accounts in the store,
// media.dir), printed as check-config prints them. -json prints one JSON
// object per check instead of text.
//
// Doctor must never disturb a running gateway:
//
//   - When a gateway is detected (its http.listen answers /healthz, the
//     bolt store is locked, or, with a Redis store, a cluster instance
//     anywhere holds the bridge's link lease), doctor does not open a
//     component link at all unless -force-link is given: it reports the
//     link state the running gateway's /readyz gives, or the instance
//     holding the lease, instead. Prosody with component_conflict_resolve
//     = "kick_old" would replace the live link with doctor's. ejabberd accepts a second link for a
//     domain and load-balances users' stanzas between the two at random
//     (protocol.md §2), so a doctor link would take a share of live
//     traffic, and the server's answers to doctor's own requests may be
//     routed to the gateway.
//   - Its component link is short-lived (small timeouts, no keepalive) and
//     closed with an orderly </stream:stream>.
//   - When the server refuses the link with <conflict/> (Prosody, Openfire:
//     the domain already has a connection) that is reported as a WARN, not
//     as a configuration failure, and the link checks that need a
//     connection are skipped.
//   - ejabberd accepts a second connection and load-balances stanzas
//     between the two for as long as doctor is connected (protocol.md §2).
//     With -force-link, or when no running gateway was detected, doctor
//     keeps that window to the few round trips it needs, answers any IQ
//     meant for the gateway with a retryable <wait/> error, reports how
//     many stanzas strayed onto its link, and reports an unanswered ping
//     as a WARN rather than a FAIL when a gateway runs.
//   - A bolt store held by a running gateway is reported as in use, never
//     forced; a missing bolt file is not created.
//   - Legacy credentials are never tried: logging in to a user's legacy
//     account from a second process can end the gateway's session (Telegram
//     and most IM networks allow one session per login) or trip the
//     network's abuse detection. -check-accounts only counts the registered
//     accounts per bridge.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
)

// Check statuses.
const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
)

const (
	nsDiscoItems   = "http://jabber.org/protocol/disco#items"
	nsDiscoInfo    = "http://jabber.org/protocol/disco#info"
	nsUpload       = "urn:xmpp:http:upload:0"
	nsPrivilegeV1  = "urn:xmpp:privilege:1"
	nsPrivilegeV2  = "urn:xmpp:privilege:2"
	nsXMPPPing     = "urn:xmpp:ping"
	maxDiscoProbes = 20 // disco#info requests per bridge when looking for the upload service
)

// check is one line of the report.
type check struct {
	Bridge  string `json:"bridge,omitempty"` // component domain; "" for global checks (store, media)
	Check   string `json:"check"`            // link, privileges, ping, upload, store, vault, media, webhook, accounts
	Status  string `json:"status"`           // OK, WARN, FAIL
	Message string `json:"message"`
	// Fix maps where to change something ("ejabberd", "prosody",
	// "openfire", "redis", "jabbergate") to the exact config lines.
	Fix map[string]string `json:"fix,omitempty"`
}

// fixOrder is the order fixes are printed in.
var fixOrder = []string{"jabbergate", "ejabberd", "prosody", "openfire", "redis"}

// doctorOptions tunes a doctor run; zero values select the defaults.
type doctorOptions struct {
	Timeout       time.Duration // per network step, default 5s
	PrivilegeWait time.Duration // wait for the XEP-0356 advertisement, default 2s
	CheckAccounts bool          // count registered accounts per bridge
	ForceLink     bool          // open a component link even when a gateway runs
	HTTPClient    *http.Client  // for media and webhook checks
	// ConfigFile is the file cfg was loaded from, which the findings of
	// the checks run and check-config refuse on name (configChecks).
	ConfigFile string
}

func (o doctorOptions) withDefaults() doctorOptions {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.PrivilegeWait <= 0 {
		o.PrivilegeWait = 2 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	return o
}

// doctorCmd is `jabbergate doctor`.
func doctorCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path to the YAML config file")
	asJSON := fs.Bool("json", false, "print one JSON object per check")
	accounts := fs.Bool("check-accounts", false, "count the registered accounts per bridge (legacy logins are never tried)")
	force := fs.Bool("force-link", false, "open a component link even when a running gateway is detected (on ejabberd it briefly shares the gateway's traffic)")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each network step")
	if status, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return status
	}
	if strayArgument(stderr, "doctor", fs) {
		return exitConfig
	}
	if *path == "" {
		requiredFlag(stderr, "doctor", "-config FILE")
		return exitConfig
	}
	// What check-config and run refuse, doctor refuses as they do (78,
	// check-config's output). The vault line of the report says when
	// the account check was skipped (a store in use), so its note is
	// not printed twice.
	cfg, ok := loadConfig(*path, stderr, checkStorePath, checkVaultKeyFileNoNote, checkMediaDir)
	if !ok {
		return exitConfig
	}
	checks := runDoctor(context.Background(), cfg, doctorOptions{Timeout: *timeout, CheckAccounts: *accounts, ForceLink: *force, ConfigFile: *path})
	if *asJSON {
		writeJSONReport(stdout, checks)
	} else {
		writeTextReport(stdout, checks)
	}
	for _, c := range checks {
		if c.Status == statusFail {
			return 1
		}
	}
	return 0
}

// runDoctor runs every check and returns them in report order: the
// store and media first, then each bridge's.
func runDoctor(ctx context.Context, cfg *config.Config, o doctorOptions) []check {
	o = o.withDefaults()
	var out []check
	// Before doctorStore opens the store: the vault check may read it.
	storeFail, vaultCheck, mediaFail := configChecks(o.ConfigFile, cfg)
	var st store.Store
	locked := false
	if storeFail != nil {
		out = append(out, *storeFail) // not opened: run could not either
	} else {
		var stChecks []check
		st, locked, stChecks = doctorStore(ctx, cfg.Store, o)
		out = append(out, stChecks...)
		if st != nil {
			defer st.Close()
		}
	}
	out = append(out, vaultCheck)
	if mediaFail != nil {
		out = append(out, *mediaFail)
	}
	out = append(out, doctorMedia(ctx, cfg.Media, o)...)
	gw := probeGateway(ctx, cfg.HTTP.Listen, o)
	if locked && !gw.running {
		gw.running, gw.how = true, "the bolt store "+cfg.Store.Path+" is locked"
	}
	for i, b := range cfg.Bridges {
		if gw.running && !o.ForceLink {
			addr := b.Server
			if addr == "" {
				addr = cfg.XMPP.Server
			}
			out = append(out, runningLinkCheck(b.Domain, addr, gw, o.Timeout))
		} else if c, held := clusterLinkCheck(ctx, b.Domain, st, o); held && !o.ForceLink {
			out = append(out, c)
		} else {
			out = append(out, doctorBridge(ctx, cfg, i, b, st, gw.running, o)...)
		}
		out = append(out, doctorWebhooks(ctx, b, cfg.HTTP.Listen, gw.running, o)...)
		out = append(out, doctorAccounts(ctx, b, st, o)...)
	}
	return out
}

// checkVaultKeyFileNoNote is checkVaultKeyFile without its note (the
// account check skipped), which doctor's vault line reports as a WARN.
func checkVaultKeyFileNoNote(file string, cfg *config.Config) error {
	err := checkVaultKeyFile(file, cfg)
	if _, ok := err.(*checkNote); ok {
		return nil
	}
	return err
}

// configChecks runs the checks on which check-config and run refuse the
// config (checkStorePath, checkVaultKeyFile with its account count,
// checkMediaDir) and turns their findings into lines of the report, the
// message the configuration error check-config prints: a FAIL each for
// store.path and media.dir (nil when fine), and the vault line, FAIL,
// WARN when the account check was skipped (checkNote), OK otherwise.
// doctorCmd has refused such a config already (exitConfig); a FAIL here
// is a file system changed since, or a caller of runDoctor without
// doctorCmd's checks.
func configChecks(file string, cfg *config.Config) (storeFail *check, vault check, mediaFail *check) {
	fail := func(name string, err error) *check {
		if err == nil {
			return nil
		}
		return &check{Check: name, Status: statusFail, Message: err.Error()}
	}
	storeFail = fail("store", checkStorePath(file, cfg))
	mediaFail = fail("media", checkMediaDir(file, cfg))
	vault = check{Check: "vault", Status: statusOK}
	err := checkVaultKeyFile(file, cfg)
	var note *checkNote
	switch {
	case errors.As(err, &note):
		vault.Status, vault.Message = statusWarn, note.Error()
	case err != nil:
		vault.Status, vault.Message = statusFail, err.Error()
	case cfg.Vault.Key != "":
		vault.Message = "vault.key is set in the config"
	default:
		if _, serr := os.Stat(cfg.Vault.KeyFile); serr == nil {
			vault.Message = "key file " + cfg.Vault.KeyFile + " holds a key"
		} else {
			vault.Message = "key file " + cfg.Vault.KeyFile + " does not exist yet; the gateway creates it on first start, as no account is registered (back it up then)"
		}
	}
	return storeFail, vault, mediaFail
}

// gatewayState is what doctor learned about a running gateway.
type gatewayState struct {
	running bool
	how     string // how it was detected
	ready   string // body of /readyz ("" when not asked)
	readyOK bool
}

// probeGateway asks the configured HTTP listener's /healthz and /readyz
// whether a gateway runs and how its links are.
func probeGateway(ctx context.Context, listen string, o doctorOptions) gatewayState {
	var gs gatewayState
	if listen == "" {
		return gs
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return gs
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	base := "http://" + net.JoinHostPort(host, port)
	get := func(path string) (int, string, error) {
		ctx, cancel := context.WithTimeout(ctx, min(o.Timeout, 2*time.Second))
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := o.HTTPClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get("/healthz"); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		return gs
	}
	gs.running, gs.how = true, base+"/healthz answers"
	if code, body, err := get("/readyz"); err == nil {
		gs.ready, gs.readyOK = strings.TrimSpace(body), code == http.StatusOK
	}
	return gs
}

// runningLinkCheck reports a bridge's link from the running gateway's
// point of view, without opening a link of doctor's own.
func runningLinkCheck(domain, addr string, gw gatewayState, timeout time.Duration) check {
	c := check{Bridge: domain, Check: "link"}
	skipped := "doctor opened no link of its own (ejabberd would load-balance users' stanzas onto it); the privilege, ping and upload checks were skipped: stop the gateway, or pass -force-link, to run them"
	down, standby := false, false
	for _, line := range strings.Split(gw.ready, "\n") {
		switch strings.TrimSpace(line) {
		case "link " + domain + " down":
			down = true
		case "link " + domain + " standby":
			standby = true
		}
	}
	switch {
	case gw.ready == "":
		c.Status = statusWarn
		c.Message = "a gateway is running (" + gw.how + ") but its link state is unknown; " + skipped
	case standby:
		c.Status = statusOK
		c.Message = "the running gateway is a cluster standby for " + domain + " (/readyz): another instance holds the link; " + skipped
	case down:
		// A plain connection (no stream) tells a server that is down from
		// one that refuses the link, without disturbing the gateway's.
		if nc, err := net.DialTimeout("tcp", addr, timeout); err != nil {
			c.Status = statusFail
			c.Message = fmt.Sprintf("the running gateway reports its link for %s down (/readyz): the component listener %s cannot be reached (%v); start the XMPP server, or check xmpp.server; %s", domain, addr, err, skipped)
		} else {
			nc.Close()
			c.Status = statusWarn
			c.Message = "the running gateway reports its link for " + domain + " down (/readyz) although " + addr + " accepts connections: the server refuses the link or closes it (the gateway's log says why: a stream error, the secret); " + skipped
		}
	default:
		c.Status = statusOK
		c.Message = "the running gateway reports its link for " + domain + " up (/readyz); " + skipped
	}
	return c
}

// clusterLinkCheck looks for a cluster instance that holds the link of
// domain (bridges/lease.go): with a shared store (Redis), a gateway may run
// on another host, where /healthz on this config's http.listen cannot see
// it. held reports that doctor must not open a link of its own (the lease
// is held, or cannot be read); c then says so. Prosody with
// component_conflict_resolve = "kick_old" would hand the domain to
// doctor's link and cut the active instance's, which hands its lease over
// and reconnects a lease period later; ejabberd would load-balance users'
// stanzas onto doctor's link.
func clusterLinkCheck(ctx context.Context, domain string, st store.Store, o doctorOptions) (c check, held bool) {
	l, ok := st.(store.Leaser)
	if !ok {
		return check{}, false
	}
	c = check{Bridge: domain, Check: "link"}
	skipped := "doctor opened no link of its own (Prosody with component_conflict_resolve = \"kick_old\" would cut the active instance's link, ejabberd would load-balance users' stanzas onto it); the privilege, ping and upload checks were skipped: pass -force-link to test anyway"
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// The lease names and holders are bridges' (cluster.linkLease,
	// instanceLease, instHolder): "link:<domain>" held by
	// "<instance>#<process nonce>", "inst:<domain>|<instance>" by the same.
	holder, _, err := l.Holder(rctx, "link:"+domain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return check{}, false
	case err != nil:
		c.Status = statusWarn
		c.Message = fmt.Sprintf("link not checked: cannot read the cluster link lease of %s in the store (%v), so a cluster instance elsewhere may hold the link; %s", domain, err, skipped)
		return c, true
	}
	inst := holder
	if j := strings.LastIndexByte(holder, '#'); j >= 0 {
		inst = holder[:j]
	}
	c.Status = statusOK
	if h, _, err := l.Holder(rctx, "inst:"+domain+"|"+inst); err == nil && h == holder {
		c.Message = fmt.Sprintf("link not checked: the cluster link lease of %s is held by instance %s, which is alive (its instance lease is held): it is the active instance; %s", domain, inst, skipped)
	} else {
		c.Message = fmt.Sprintf("link not checked: the cluster link lease of %s is held by instance %s (its instance lease is gone: it may have stopped; the link lease then expires within cluster.lease_ttl and a standby takes over); %s", domain, inst, skipped)
	}
	return c, true
}

// ---- XMPP link ----

// linkEvents captures what the component link reports while doctor waits
// for the handshake: the first failure, from its logger and observer.
type linkEvents struct {
	mu      sync.Mutex
	failed  chan struct{}
	once    sync.Once
	err     string
	cond    string // stream error condition
	text    string
	meaning string
}

func (e *linkEvents) fail(err, cond, text, meaning string) {
	e.mu.Lock()
	if e.err == "" && e.cond == "" {
		e.err, e.cond, e.text, e.meaning = err, cond, text, meaning
	}
	e.mu.Unlock()
	e.once.Do(func() { close(e.failed) })
}

// Handle implements slog.Handler for the link's logger.
func (e *linkEvents) Enabled(context.Context, slog.Level) bool { return true }
func (e *linkEvents) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *linkEvents) WithGroup(string) slog.Handler            { return e }
func (e *linkEvents) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "component link connect failed", "component link handshake failed", "component link stream error from server":
	default:
		return nil
	}
	var errText, cond, text, meaning, phase string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "err":
			errText = a.Value.String()
		case "condition":
			cond = a.Value.String()
		case "text":
			text = a.Value.String()
		case "meaning":
			meaning = a.Value.String()
		case "phase":
			phase = a.Value.String()
		}
		return true
	})
	if r.Message == "component link stream error from server" && phase != "handshake" {
		return nil
	}
	e.fail(errText, cond, text, meaning)
	return nil
}

// doctorLink is doctor's connection for one bridge.
type doctorLink struct {
	link    *component.Link
	conn    *component.Conn
	adverts chan *stanza.Element
	stray   atomic.Int64 // stanzas meant for a running gateway
	cancel  context.CancelFunc
	done    chan struct{}
}

func (d *doctorLink) close() {
	d.cancel()
	<-d.done
}

// doctorBridge runs the link, privilege, ping and upload checks of bridge i.
func doctorBridge(ctx context.Context, cfg *config.Config, i int, b config.Bridge, st store.Store, running bool, o doctorOptions) []check {
	add := func(out []check, name, status, msg string, fix map[string]string) []check {
		return append(out, check{Bridge: b.Domain, Check: name, Status: status, Message: msg, Fix: fix})
	}
	var out []check
	addr := b.Server
	if addr == "" {
		addr = cfg.XMPP.Server
	}
	serverDomain := b.Domain
	if j := strings.IndexByte(b.Domain, '.'); j >= 0 {
		serverDomain = b.Domain[j+1:]
	}
	key := fmt.Sprintf("bridges[%d]", i)
	secretKey := key + ".secret" // where the secret comes from, as the admin wrote it
	if b.SecretFile != "" {
		secretKey = key + ".secret_file (" + b.SecretFile + ")"
	}

	// 1a. TCP reach.
	nc, err := net.DialTimeout("tcp", addr, o.Timeout)
	if err != nil {
		return add(out, "link", statusFail, fmt.Sprintf("cannot reach the component listener %s: %v; check xmpp.server (or %s.server) and that the server listens for components there (Prosody opens component_ports only once a Component is defined)", addr, err, key), listenerFix(addr, b.Domain, secretKey))
	}
	nc.Close()

	// 1b. Handshake.
	ev := &linkEvents{failed: make(chan struct{})}
	dl := &doctorLink{adverts: make(chan *stanza.Element, 4), done: make(chan struct{})}
	lctx, cancel := context.WithCancel(ctx)
	dl.cancel = cancel
	l, err := component.New(component.Config{
		Addr:          addr,
		Domain:        b.Domain,
		Secret:        b.Secret,
		MaxStanzaSize: int(cfg.XMPP.MaxStanzaSize),
		PingInterval:  time.Hour, // no keepalive: doctor's link is short-lived
		PingTimeout:   o.Timeout,
		DialTimeout:   o.Timeout,
		MinBackoff:    time.Hour, // one attempt only: doctor cancels before any retry
		MaxBackoff:    time.Hour,
		AuthBackoff:   time.Hour,
		Logger:        slog.New(ev),
	}, component.HandlerFunc(func(st *stanza.Element) { dl.handle(lctx, st, serverDomain) }))
	if err != nil {
		cancel()
		return add(out, "link", statusFail, fmt.Sprintf("%s: %v", key, err), nil)
	}
	dl.link = l
	go func() {
		defer close(dl.done)
		_ = l.Run(lctx)
	}()
	defer dl.close()
	wctx, wcancel := context.WithTimeout(lctx, 2*o.Timeout+time.Second)
	go func() {
		select {
		case <-ev.failed:
			wcancel()
		case <-wctx.Done():
		}
	}()
	conn, err := l.WaitUp(wctx)
	wcancel()
	if err != nil {
		ev.mu.Lock()
		cond, msg, text, meaning := ev.cond, ev.err, ev.text, ev.meaning
		ev.mu.Unlock()
		if cond == "" && msg == "" {
			msg = "no handshake reply within " + (2*o.Timeout + time.Second).String()
		}
		return append(out, handshakeCheck(b.Domain, key, secretKey, addr, serverDomain, cond, text, meaning, msg, running))
	}
	dl.conn = conn
	msg := fmt.Sprintf("%s reachable; handshake for %s accepted", addr, b.Domain)
	if running {
		msg += "; note: a gateway answers on http.listen and this server accepted a second link (ejabberd load-balances between links while doctor is connected)"
	}
	out = add(out, "link", statusOK, msg, nil)

	// 2. XEP-0356 privileges.
	out = append(out, privilegeCheck(ctx, conn, b.Domain, serverDomain, rosterProbeJID(ctx, st, b.Domain, serverDomain, o), dl.adverts, o.PrivilegeWait, o.Timeout))

	// 3. Ping round trip. Beside a running gateway on ejabberd the answer
	// may be routed to the gateway's link: try a few times then.
	attempts := 1
	if running {
		attempts = 3
	}
	var rtt time.Duration
	for n := 0; n < attempts; n++ {
		pctx, pcancel := context.WithTimeout(ctx, o.Timeout)
		ping := stanza.New(stanza.NSComponent, "iq", "type", "get", "to", serverDomain).Add(stanza.New(nsXMPPPing, "ping"))
		start := time.Now()
		_, err = conn.Request(pctx, ping)
		rtt = time.Since(start)
		pcancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			break
		}
	}
	var se *stanza.Error
	switch {
	case err == nil:
		out = add(out, "ping", statusOK, fmt.Sprintf("ping to %s answered in %v", serverDomain, rtt.Round(time.Microsecond)), nil)
	case errors.As(err, &se):
		out = add(out, "ping", statusOK, fmt.Sprintf("ping to %s answered in %v (with error %s, which still proves the round trip)", serverDomain, rtt.Round(time.Microsecond), se.Condition), nil)
	case running || dl.stray.Load() > 0:
		out = add(out, "ping", statusWarn, fmt.Sprintf("no answer to a ping to %s (%v), but another link to %s is up and the server may have routed the answer to it (ejabberd load-balances between links); stop the gateway for a conclusive check", serverDomain, err, b.Domain), nil)
	default:
		out = add(out, "ping", statusFail, fmt.Sprintf("no answer to a ping to %s: %v; the gateway's delivery barrier and keepalive need the server to answer pings to its domain", serverDomain, err), nil)
	}

	// 4. HTTP upload.
	up := uploadCheck(ctx, conn, b.Domain, serverDomain, o)
	if up.Status != statusOK && (running || dl.stray.Load() > 0) {
		up.Message += " (another link to " + b.Domain + " is up and may have received the server's answers; stop the gateway for a conclusive check)"
	}
	out = append(out, up)

	if n := dl.stray.Load(); n > 0 {
		// Doctor's own link caused this, so no server setting is the fix.
		// ejabberd's domain_balancing in particular must not be suggested:
		// with a component_number above the live links it drops stanzas
		// (docs/admin-ejabberd.md §4).
		out = add(out, "link", statusWarn, fmt.Sprintf("%d stanza(s) meant for the running gateway arrived on doctor's link while it was connected (the server spreads stanzas between links to %s); IQs among them were answered with a retryable wait error. Doctor's second link caused this: stop the gateway before doctor -force-link; do not set ejabberd's domain_balancing for it (docs/admin-ejabberd.md §4)", n, b.Domain), nil)
	}
	return out
}

// handle is the doctor link's stanza handler.
func (d *doctorLink) handle(ctx context.Context, st *stanza.Element, serverDomain string) {
	if st.Local == "message" && !strings.ContainsAny(st.From(), "@/") {
		if st.Child(nsPrivilegeV2, "privilege") != nil || st.Child(nsPrivilegeV1, "privilege") != nil {
			select {
			case d.adverts <- st:
			default:
			}
			return
		}
	}
	// Roster pushes under a privilege grant are the server's, not a
	// user's: acknowledge them like the gateway does.
	if st.Local == "iq" && st.Type() == "set" && st.Child("jabber:iq:roster", "query") != nil && !strings.Contains(st.To(), "@") {
		_ = d.link.Send(ctx, stanza.Result(st, nil))
		return
	}
	d.stray.Add(1)
	if st.Local == "iq" && (st.Type() == "get" || st.Type() == "set") {
		// resource-constraint is of type wait: the sender may retry.
		_ = d.link.Send(ctx, stanza.ErrorReply(st, stanza.NewError(stanza.ResourceConstraint, "")))
	}
}

// handshakeCheck explains a failed handshake; secretKey names the config
// key the secret came from (bridges[N].secret or its secret_file).
func handshakeCheck(domain, key, secretKey, addr, serverDomain, cond, text, meaning, errText string, running bool) check {
	c := check{Bridge: domain, Check: "link", Status: statusFail}
	sub := domain
	if strings.HasSuffix(domain, "."+serverDomain) {
		sub = strings.TrimSuffix(domain, "."+serverDomain)
	}
	secretFix := map[string]string{
		"ejabberd": "listen:\n  -\n    port: " + portOf(addr) + "\n    module: ejabberd_service\n    hosts:\n      \"" + domain + "\":\n        password: \"<the secret of " + secretKey + ">\"",
		"prosody":  "Component \"" + domain + "\"\n  component_secret = \"<the secret of " + secretKey + ">\"",
		"openfire": "Server > Server Settings > External Components: Allowed to Connect: subdomain \"" + sub + "\", shared secret <the secret of " + secretKey + ">\n(or the system property xmpp.component.defaultSecret)",
	}
	switch cond {
	case "not-authorized":
		c.Message = fmt.Sprintf("the server rejected the secret for %s: %s does not match the server's component secret (change one of them so they are equal)", domain, secretKey)
		c.Fix = secretFix
	case "host-unknown":
		if strings.Contains(meaning, "client (c2s) port") { // component.StreamError.Meaning: it answered as a client port
			c.Message = fmt.Sprintf("%s is not the server's component port (it answered as its client port, which serves no clients on %s): point xmpp.server or %s.server at the component listener", addr, domain, key)
			c.Fix = clientPortFix(addr, key)
			break
		}
		c.Message = fmt.Sprintf("the server at %s has no component %s configured: add it (and check %s.domain)", addr, domain, key)
		c.Fix = secretFix
		c.Fix["prosody"] += "\n-- then restart Prosody: 0.12 does not start a Component block added on reload"
		c.Fix["openfire"] = "the component must be a subdomain of the XMPP domain; " + c.Fix["openfire"]
	case "conflict":
		c.Status = statusWarn
		if running {
			c.Message = fmt.Sprintf("%s is already connected (a gateway is running): the server refused doctor's second link (conflict), which is expected and left the running gateway alone; the privilege, ping and upload checks need the link and were skipped (stop the gateway to run them)", domain)
		} else {
			c.Message = fmt.Sprintf("the server refused the link with conflict: another component is connected as %s (another gateway instance?), or on ejabberd %s is also one of the server's own virtual hosts; the privilege, ping and upload checks were skipped", domain, domain)
		}
	case "invalid-namespace":
		c.Message = fmt.Sprintf("%s is not the server's component port (it refused jabber:component:accept): point xmpp.server or %s.server at the component listener", addr, key)
		c.Fix = listenerFix(addr, domain, secretKey)
	case "":
		c.Message = fmt.Sprintf("handshake with %s failed: %s; check that %s is the server's XEP-0114 component port, not its client (5222) or s2s (5269) port", addr, errText, addr)
		c.Fix = listenerFix(addr, domain, secretKey)
	default:
		c.Message = fmt.Sprintf("the server refused the handshake with stream error %s", cond)
		if text != "" {
			c.Message += " (" + text + ")"
		}
		if meaning != "" {
			c.Message += ": " + meaning
		}
	}
	return c
}

func portOf(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return "5347"
}

// clientPortFix is the fix when addr answered as the server's client
// port: the gateway's config names the wrong port, so the fix is
// xmpp.server (or key.server, key being bridges[N]) set to the server's
// component port, not a listener on the client port.
func clientPortFix(addr, key string) map[string]string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return map[string]string{
		"jabbergate": "xmpp:\n  server: " + net.JoinHostPort(host, "<the component port>") + "   # or " + key + ".server; " + portOf(addr) + " is the client port",
		"prosody":    "the component port is component_ports (default 5347), not c2s_ports (default 5222)",
		"ejabberd":   "the component port is the port of the listener with module: ejabberd_service, not of ejabberd_c2s",
		"openfire":   "the component port is Server > Server Settings > External Components, port (default 5275; system property xmpp.component.socket.port)",
	}
}

// listenerFix is the server config that opens a component listener for
// domain; secretKey names where the gateway's secret comes from (the fix
// shows a placeholder, never the secret). Prosody opens component_ports
// only once a Component is defined, so its fix includes the block.
func listenerFix(addr, domain, secretKey string) map[string]string {
	p := portOf(addr)
	return map[string]string{
		"ejabberd": "listen:\n  -\n    port: " + p + "\n    ip: \"127.0.0.1\"\n    module: ejabberd_service",
		"prosody": "-- global section, before the first VirtualHost or Component\ncomponent_ports = { " + p + " }\ncomponent_interfaces = { \"127.0.0.1\" }\n" +
			"-- Prosody listens on the component port only once a Component is defined:\n" +
			"Component \"" + domain + "\"\n  component_secret = \"<the secret of " + secretKey + ">\"",
		"openfire": "Server > Server Settings > External Components: Enabled, port " + p + " (system property xmpp.component.socket.port)",
	}
}

// rosterProbeJID is whose roster the privilege check reads: a user of
// serverDomain registered with the bridge, or else an account that does
// not exist.
func rosterProbeJID(ctx context.Context, st store.Store, domain, serverDomain string, o doctorOptions) string {
	if st != nil {
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		accs, err := st.ListAccounts(rctx, domain)
		cancel()
		var ce *store.CorruptAccountsError
		if err == nil || errors.As(err, &ce) {
			for _, a := range accs {
				if _, d, ok := strings.Cut(a.JID, "@"); ok && strings.EqualFold(d, serverDomain) {
					return a.JID
				}
			}
		}
	}
	return "jabbergate-doctor-probe@" + serverDomain
}

// privilegeCheck waits for the XEP-0356 advertisement and reports it; when
// the grant lets the gateway read rosters, it also tries one privileged
// roster request, because a server may advertise roster access and then
// fail every request (ejabberd 23.01: "Module failed to handle the
// query"), which leaves the gateway on subscription requests.
func privilegeCheck(ctx context.Context, conn *component.Conn, domain, serverDomain, probeJID string, adverts <-chan *stanza.Element, wait, timeout time.Duration) check {
	c := check{Bridge: domain, Check: "privileges"}
	fix := map[string]string{
		"ejabberd": "acl:\n  gateway_acl:\n    server:\n      - \"" + domain + "\"\naccess_rules:\n  gateway_rule:\n    - allow: gateway_acl\nmodules:\n  mod_privilege:\n    roster:\n      both: gateway_rule\n    message:\n      outgoing: gateway_rule",
		"prosody":  "-- prosodyctl install --server=https://modules.prosody.im/rocks/ mod_privilege\nVirtualHost \"" + serverDomain + "\"\n  modules_enabled = { \"privilege\" }\n  privileged_entities = {\n    [\"" + domain + "\"] = { roster = \"both\"; message = \"outgoing\"; };\n  }\nComponent \"" + domain + "\"\n  modules_enabled = { \"privilege\" }",
		"openfire": "Openfire has no XEP-0356 support: the gateway uses roster item exchange and subscription requests instead",
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var adv *stanza.Element
	select {
	case adv = <-adverts:
	case <-t.C:
	case <-ctx.Done():
	}
	if adv == nil {
		c.Status = statusWarn
		c.Message = fmt.Sprintf("no XEP-0356 privilege advertisement within %v: the gateway cannot add contacts to users' rosters itself (it falls back to roster item exchange and subscription requests) nor show messages users sent from the legacy app as sent by them", wait)
		c.Fix = fix
		return c
	}
	ns := nsPrivilegeV2
	p := adv.Child(nsPrivilegeV2, "privilege")
	if p == nil {
		ns, p = nsPrivilegeV1, adv.Child(nsPrivilegeV1, "privilege")
	}
	roster, push, message := "none", false, "none"
	var iqs []string
	for _, perm := range p.Children() {
		if perm.Local != "perm" || perm.Space != ns {
			continue
		}
		switch perm.Attr("access") {
		case "roster":
			roster = perm.Attr("type")
			push = perm.Attr("push") == "true" || perm.Attr("push") == "1"
		case "message":
			message = perm.Attr("type")
		case "iq":
			for ns, typ := range bridges.IQGrants(perm) {
				iqs = append(iqs, ns+"="+typ)
			}
		}
	}
	version := "v2"
	if ns == nsPrivilegeV1 {
		version = "v1"
	}
	c.Message = fmt.Sprintf("%s (%s) from %s: roster=%s", ns, version, adv.From(), roster)
	if push {
		c.Message += " (push)"
	}
	c.Message += ", message=" + message
	if len(iqs) > 0 {
		slices.Sort(iqs)
		c.Message += ", iq=" + strings.Join(iqs, ",")
	}
	var missing []string
	brokenRoster := false
	if roster != "both" && roster != "set" {
		missing = append(missing, "roster set (contacts cannot be added to users' rosters directly)")
	}
	if roster != "none" && roster != "" {
		// A registered user's roster, or else one of an account that does
		// not exist. With set access the request removes an item that is
		// in no roster (a no-op: a result or item-not-found), because
		// ejabberd 23.01 answers roster reads and fails every change.
		// The answer is a result or a refusal (item-not-found, or
		// service-unavailable for an unknown user, RFC 6120 §10.5.3.1);
		// only a failure of the server itself means its privileged
		// roster handling is broken.
		rctx, cancel := context.WithTimeout(ctx, min(timeout, 2*time.Second)) // a server answers in milliseconds
		query := stanza.New("jabber:iq:roster", "query")
		typ := "get"
		if roster == "both" || roster == "set" {
			typ = "set"
			query.Add(stanza.New("jabber:iq:roster", "item", "jid", "jabbergate-doctor-probe@"+domain, "subscription", "remove"))
		}
		probe := stanza.New(stanza.NSComponent, "iq", "type", typ, "from", domain, "to", probeJID).Add(query)
		_, err := conn.Request(rctx, probe)
		cancel()
		var se *stanza.Error
		switch {
		case errors.As(err, &se) && (se.Condition == stanza.InternalServerError || se.Condition == stanza.FeatureNotImplemented):
			missing = append(missing, fmt.Sprintf("working roster access: the server advertises it but failed a privileged roster request (%s %q; ejabberd before 23.10 does this), so the gateway falls back to roster item exchange and subscription requests", se.Condition, se.Text))
			brokenRoster = true
		case err == nil || se != nil:
			c.Message += "; a privileged roster request was answered"
			if !strings.HasPrefix(probeJID, "jabbergate-doctor-probe@") {
				c.Message += " (a registered user's)"
			}
		default:
			c.Message += "; the privileged roster request got no answer (" + err.Error() + ")"
		}
	}
	if message != "outgoing" {
		missing = append(missing, "message outgoing (messages sent from the legacy app are not shown as the user's)")
	}
	if len(missing) == 0 && len(iqs) == 0 {
		c.Status = statusOK
		return c
	}
	c.Status = statusWarn
	if len(missing) > 0 {
		c.Message += "; missing: " + strings.Join(missing, "; ")
	}
	if len(iqs) > 0 {
		// The gateway sends no privileged IQs (bridges/privilege.go only
		// logs the grant): an iq permission is excess privilege, on pubsub
		// over every user's PEP, OMEMO keys included.
		c.Message += "; not needed: the iq permission (" + strings.Join(iqs, ",") + "): the gateway sends no privileged IQs, and the grant lets the component read and change what it names for every user (on pubsub: their PEP, OMEMO keys included); grant roster and message only"
	}
	delete(fix, "openfire")
	if brokenRoster {
		fix["ejabberd"] = "ejabberd 23.10 or later (urn:xmpp:privilege:2) handles privileged roster requests; earlier versions advertise them and fail them. Until then the gateway adds contacts with subscription requests.\n" + fix["ejabberd"]
	}
	c.Fix = fix
	return c
}

// uploadCheck looks for an XEP-0363 service among the server's disco
// items (and the server itself).
func uploadCheck(ctx context.Context, conn *component.Conn, domain, serverDomain string, o doctorOptions) check {
	c := check{Bridge: domain, Check: "upload"}
	fix := map[string]string{
		// The users' clients upload; the gateway only downloads the links
		// they send, so the fixes grant it nothing. A Prosody 0.12
		// http_file_share_access list naming only the gateway would lock
		// every user out (a non-empty list admits only what it names).
		"prosody":  "Component \"upload." + serverDomain + "\" \"http_file_share\"\n  -- leave http_file_share_access unset: then every local host may upload;\n  -- the gateway requests no slots (if you set it, list \"" + serverDomain + "\", not only \"" + domain + "\")",
		"ejabberd": "listen:\n  -\n    port: 5443\n    module: ejabberd_http\n    tls: true\n    request_handlers:\n      /upload: mod_http_upload\nmodules:\n  mod_http_upload:\n    put_url: \"https://@HOST@:5443/upload\"\n    # access: local (the default) lets the users upload; the gateway requests no slots",
		"openfire": "install the HTTP File Upload plugin (Server > Plugins)",
	}
	request := func(to, ns string) (*stanza.Element, error) {
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		iq := stanza.New(stanza.NSComponent, "iq", "type", "get", "to", to).Add(stanza.New(ns, "query"))
		return conn.Request(rctx, iq)
	}
	hasUpload := func(jid string) (bool, string) {
		r, err := request(jid, nsDiscoInfo)
		if err != nil {
			return false, ""
		}
		q := r.Child(nsDiscoInfo, "query")
		if q == nil {
			return false, ""
		}
		found := false
		for _, f := range q.Children() {
			if f.Local == "feature" && f.Attr("var") == nsUpload {
				found = true
			}
		}
		if !found {
			return false, ""
		}
		// max-file-size from the XEP-0128 form, if any.
		for _, x := range q.Children() {
			if x.Local != "x" {
				continue
			}
			for _, f := range x.Children() {
				if f.Local == "field" && f.Attr("var") == "max-file-size" {
					return true, f.ChildText(f.Space, "value")
				}
			}
		}
		return true, ""
	}
	r, err := request(serverDomain, nsDiscoItems)
	if err != nil {
		c.Status = statusWarn
		c.Message = fmt.Sprintf("disco#items on %s failed (%v): cannot tell whether HTTP upload (XEP-0363) is available; without it users' files cannot be sent through the gateway (see the media section)", serverDomain, err)
		c.Fix = fix
		return c
	}
	jids := []string{}
	if q := r.Child(nsDiscoItems, "query"); q != nil {
		for _, it := range q.Children() {
			if it.Local == "item" && it.Attr("jid") != "" && it.Attr("jid") != domain && it.Attr("node") == "" {
				jids = append(jids, it.Attr("jid"))
			}
		}
	}
	// Likely names first.
	slices.SortStableFunc(jids, func(a, b string) int {
		ua, ub := strings.Contains(a, "upload") || strings.Contains(a, "share"), strings.Contains(b, "upload") || strings.Contains(b, "share")
		switch {
		case ua && !ub:
			return -1
		case ub && !ua:
			return 1
		}
		return 0
	})
	jids = append(jids, serverDomain)
	if len(jids) > maxDiscoProbes {
		jids = jids[:maxDiscoProbes]
	}
	for _, j := range jids {
		if ok, max := hasUpload(j); ok {
			c.Status = statusOK
			c.Message = "HTTP upload (" + nsUpload + ") at " + j
			if max != "" {
				c.Message += ", max-file-size " + max + " bytes"
			}
			return c
		}
	}
	c.Status = statusWarn
	c.Message = fmt.Sprintf("no HTTP upload service (%s) among the disco items of %s: users' files cannot be sent through the gateway without it (see the media section)", nsUpload, serverDomain)
	c.Fix = fix
	return c
}

// ---- store ----

// doctorStore opens the store, reports on it and returns it (nil when it
// could not or must not be opened).
func doctorStore(ctx context.Context, cfg config.Store, o doctorOptions) (st store.Store, locked bool, checks []check) {
	c := check{Check: "store"}
	switch cfg.Backend {
	case "redis":
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		// The client library's own lines (Sentinel news, dial retries)
		// would go to stderr in its format, between the checks: the
		// check's verdict says what matters.
		redisstore.SetLogger(slog.New(slog.DiscardHandler))
		s, err := redisstore.Open(rctx, cfg.Redis.URL, redisstore.Options{Prefix: cfg.Redis.Prefix})
		if err != nil {
			c.Status, c.Message = statusFail, fmt.Sprintf("redis unreachable: %v; check store.redis.url", err)
			return nil, false, []check{c}
		}
		out := []check{{Check: "store", Status: statusOK, Message: "redis answers PING"}}
		p := check{Check: "store"}
		aof, how := redisAOF(rctx, s)
		switch aof {
		case "yes":
			p.Status, p.Message = statusOK, "redis persistence: append-only file on ("+how+")"
		case "no":
			p.Status = statusWarn
			p.Message = "redis persistence: append-only file off (" + how + "): a Redis restart can lose the last minutes of queued messages and registrations"
			p.Fix = map[string]string{"redis": "# redis.conf\nappendonly yes\nappendfsync everysec\n# or at run time: CONFIG SET appendonly yes, then CONFIG REWRITE"}
		default:
			p.Status = statusWarn
			p.Message = "redis persistence: cannot tell whether the append-only file is on (" + how + ")"
			p.Fix = map[string]string{"redis": "# redis.conf\nappendonly yes"}
		}
		return s, false, append(out, p)
	case "pebble":
		return doctorPebble(cfg)
	default:
		info, err := os.Stat(cfg.Path)
		if errors.Is(err, os.ErrNotExist) {
			dir := filepath.Dir(cfg.Path)
			if di, derr := os.Stat(dir); derr != nil || !di.IsDir() {
				c.Status, c.Message = statusFail, fmt.Sprintf("bolt store %s does not exist and its directory %s is missing; create the directory or change store.path", cfg.Path, dir)
				return nil, false, []check{c}
			}
			c.Status, c.Message = statusOK, fmt.Sprintf("bolt store %s does not exist yet; the gateway creates it on first start", cfg.Path)
			return nil, false, []check{c}
		}
		if err != nil {
			c.Status, c.Message = statusFail, fmt.Sprintf("bolt store %s: %v", cfg.Path, err)
			return nil, false, []check{c}
		}
		if info.IsDir() {
			c.Status, c.Message = statusFail, fmt.Sprintf("bolt store %s is a directory; store.path must name a file", cfg.Path)
			return nil, false, []check{c}
		}
		s, err := bolt.Open(cfg.Path, bolt.Timeout(300*time.Millisecond))
		if errors.Is(err, store.ErrLocked) {
			c.Status, c.Message = statusOK, fmt.Sprintf("bolt store %s is in use by a running gateway (file locked); not opened", cfg.Path)
			return nil, true, []check{c}
		}
		if err != nil {
			c.Status, c.Message = statusFail, fmt.Sprintf("bolt store: %v", err)
			if errors.Is(err, store.ErrCorrupt) {
				c.Fix = map[string]string{"jabbergate": damagedStoreFix}
			}
			return nil, false, []check{c}
		}
		// bbolt's consistency check reads every page: damage Open does
		// not meet would crash the gateway later, on the page's first read.
		if err := s.Check(ctx); err != nil {
			s.Close()
			c.Status, c.Message = statusFail, fmt.Sprintf("bolt store: %v", err)
			c.Fix = map[string]string{"jabbergate": damagedStoreFix}
			return nil, false, []check{c}
		}
		c.Status, c.Message = statusOK, fmt.Sprintf("bolt store %s opens and its pages are consistent (persistent file)", cfg.Path)
		return s, false, []check{c}
	}
}

// damagedStoreFix is the fix line of a store Open or Check finds damaged.
const damagedStoreFix = "stop the gateway, keep a copy of the damaged store, and restore store.path from a backup (docs/operations.md, \"A damaged store\")"

// doctorPebble opens the pebble store directory, like the bolt case: a
// directory held by a running gateway is reported, not forced.
func doctorPebble(cfg config.Store) (store.Store, bool, []check) {
	c := check{Check: "store"}
	info, err := os.Stat(cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		dir := filepath.Dir(cfg.Path)
		if di, derr := os.Stat(dir); derr != nil || !di.IsDir() {
			c.Status, c.Message = statusFail, fmt.Sprintf("pebble store %s does not exist and its parent directory %s is missing; create the directory or change store.path", cfg.Path, dir)
			return nil, false, []check{c}
		}
		c.Status, c.Message = statusOK, fmt.Sprintf("pebble store %s does not exist yet; the gateway creates it on first start", cfg.Path)
		return nil, false, []check{c}
	}
	if err != nil {
		c.Status, c.Message = statusFail, fmt.Sprintf("pebble store %s: %v", cfg.Path, err)
		return nil, false, []check{c}
	}
	if !info.IsDir() {
		c.Status, c.Message = statusFail, fmt.Sprintf("pebble store %s is not a directory; store.path must name a directory with the pebble backend", cfg.Path)
		return nil, false, []check{c}
	}
	s, err := pebblestore.Open(cfg.Path, pebblestore.Timeout(300*time.Millisecond))
	if errors.Is(err, store.ErrLocked) {
		c.Status, c.Message = statusOK, fmt.Sprintf("pebble store %s is in use by a running gateway (directory locked); not opened", cfg.Path)
		return nil, true, []check{c}
	}
	if err != nil {
		c.Status, c.Message = statusFail, fmt.Sprintf("pebble store: %v", err)
		if errors.Is(err, store.ErrCorrupt) {
			c.Fix = map[string]string{"jabbergate": damagedStoreFix}
		}
		return nil, false, []check{c}
	}
	c.Status, c.Message = statusOK, fmt.Sprintf("pebble store %s opens (persistent directory)", cfg.Path)
	return s, false, []check{c}
}

// redisAOF reports "yes", "no" or "" (unknown) for Redis's appendonly
// setting, and how it was found.
func redisAOF(ctx context.Context, s *redisstore.Store) (string, string) {
	cl := s.Client()
	if m, err := cl.ConfigGet(ctx, "appendonly").Result(); err == nil {
		if v, ok := m["appendonly"]; ok {
			return strings.ToLower(v), "CONFIG GET appendonly"
		}
	}
	info, err := cl.Info(ctx, "persistence").Result()
	if err != nil {
		return "", "CONFIG GET and INFO persistence refused: " + err.Error()
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
			if v == "1" {
				return "yes", "INFO persistence"
			}
			return "no", "INFO persistence"
		}
	}
	return "", "INFO persistence has no aof_enabled"
}

// ---- HTTP ----

// doctorMedia checks media.base_url.
func doctorMedia(ctx context.Context, m config.Media, o doctorOptions) []check {
	if m.BaseURL == "" {
		return []check{{Check: "media", Status: statusWarn,
			Message: "media.base_url is not set: files from legacy contacts arrive as a text note instead of a file",
			Fix:     map[string]string{"jabbergate": "media:\n  base_url: https://gateway.example.org   # public URL of http.listen (behind a reverse proxy)"}}}
	}
	return []check{httpReach(ctx, "", "media", "media.base_url", m.BaseURL, o)}
}

// doctorWebhooks checks the adapter options that name the gateway's public
// URL. A URL that the gateway's own listener (listen, http.listen) serves
// cannot answer while the gateway is stopped, the usual moment to run
// doctor: when no gateway runs (running) and nothing listens there, the
// check says it was not done instead of warning. A running gateway's URL is
// checked.
func doctorWebhooks(ctx context.Context, b config.Bridge, listen string, running bool, o doctorOptions) []check {
	var out []check
	for _, k := range []string{"public_url", "webhook_url"} {
		u := b.Options[k]
		if u == "" {
			continue
		}
		if !running && servedByListener(ctx, listen, u, o.Timeout) && !listening(ctx, listen, o.Timeout) {
			out = append(out, check{Bridge: b.Domain, Check: "webhook", Status: statusOK,
				Message: fmt.Sprintf("options.%s %s not checked: the gateway is not running (its own listener, http.listen %s, serves this URL); run doctor again while it runs to check it", k, u, listen)})
			continue
		}
		out = append(out, httpReach(ctx, b.Domain, "webhook", "options."+k, u, o))
	}
	return out
}

// servedByListener reports whether requests to the URL raw reach the
// gateway's own listener at listen (http.listen) when doctor sends them
// from this host: plain http on the listener's port, to an address it
// listens on (any local address when it listens on all). A host name is
// resolved within timeout; a URL behind a reverse proxy is not the
// listener's.
func servedByListener(ctx context.Context, listen, raw string, timeout time.Duration) bool {
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if port != lport {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	targets := resolveHost(rctx, u.Hostname())
	var served func(netip.Addr) bool
	if la, err := netip.ParseAddr(lhost); lhost == "" || (err == nil && la.IsUnspecified()) {
		local := localAddrs()
		served = func(a netip.Addr) bool { return a.IsLoopback() || a.IsUnspecified() || slices.Contains(local, a) }
	} else {
		own := resolveHost(rctx, lhost)
		served = func(a netip.Addr) bool { return slices.Contains(own, a) }
	}
	return slices.ContainsFunc(targets, served)
}

// resolveHost returns host's addresses (host itself for an IP literal),
// IPv4-mapped ones unmapped; none when it does not resolve.
func resolveHost(ctx context.Context, host string) []netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.WithZone("").Unmap()}
	}
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for i, a := range as {
		as[i] = a.WithZone("").Unmap()
	}
	return as
}

// localAddrs are the addresses of this host's interfaces.
func localAddrs() []netip.Addr {
	ifs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ia := range ifs {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}

// listening reports whether something accepts TCP connections at listen
// (http.listen; a wildcard host is tried on 127.0.0.1).
func listening(ctx context.Context, listen string, timeout time.Duration) bool {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	d := net.Dialer{Timeout: min(timeout, 2*time.Second)}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// httpReach GETs u: any HTTP answer proves reachability; a transport error
// is a WARN (the URL may only be reachable from outside).
func httpReach(ctx context.Context, bridge, name, key, u string, o doctorOptions) check {
	c := check{Bridge: bridge, Check: name}
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		c.Status, c.Message = statusWarn, fmt.Sprintf("%s %q is not a valid URL: %v", key, u, err)
		return c
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		c.Status, c.Message = statusWarn, fmt.Sprintf("%s %s is not reachable from here: %v (it must be reachable by users' clients and the legacy network; check the reverse proxy)", key, u, err)
		return c
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.Status, c.Message = statusOK, fmt.Sprintf("%s %s reachable (HTTP %d)", key, u, resp.StatusCode)
	if resp.StatusCode >= 500 {
		c.Status = statusWarn
		c.Message += ": the server behind it fails; is the gateway running behind the proxy?"
	}
	return c
}

// ---- accounts ----

// doctorAccounts counts the registered accounts with -check-accounts; it
// never logs in to a legacy account.
func doctorAccounts(ctx context.Context, b config.Bridge, st store.Store, o doctorOptions) []check {
	if !o.CheckAccounts {
		return nil
	}
	c := check{Bridge: b.Domain, Check: "accounts", Status: statusOK}
	if st == nil {
		c.Message = "store not opened (in use or absent): accounts not counted"
		return []check{c}
	}
	rctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	accs, err := st.ListAccounts(rctx, b.Domain)
	var ce *store.CorruptAccountsError
	if err != nil && !errors.As(err, &ce) {
		c.Status, c.Message = statusWarn, fmt.Sprintf("listing accounts failed: %v", err)
		return []check{c}
	}
	c.Message = fmt.Sprintf("%d registered account(s); legacy logins not tried (doctor never logs in to users' accounts)", len(accs))
	if ce != nil {
		// The gateway skips these users (an ERROR line each at start).
		c.Status = statusFail
		c.Message = fmt.Sprintf("%d registered account(s) readable, %d not: %v; those users are not started", len(accs), len(ce.Records), ce)
		c.Fix = map[string]string{"jabbergate": "restore the store from a backup, or delete each user named (jabbergate delete-user -config FILE -jid JID) so that they can register again"}
	}
	return []check{c}
}

// ---- output ----

func writeJSONReport(w io.Writer, checks []check) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, c := range checks {
		_ = enc.Encode(c)
	}
}

func writeTextReport(w io.Writer, checks []check) {
	cur := "\x00"
	counts := map[string]int{}
	for _, c := range checks {
		if c.Bridge != cur {
			cur = c.Bridge
			if c.Bridge == "" {
				fmt.Fprintln(w, "[global]")
			} else {
				fmt.Fprintf(w, "[bridge %s]\n", c.Bridge)
			}
		}
		counts[c.Status]++
		fmt.Fprintf(w, "%-4s  %-10s  %s\n", c.Status, c.Check, c.Message)
		for _, k := range fixOrder {
			if s, ok := c.Fix[k]; ok {
				fmt.Fprintf(w, "      fix (%s):\n", k)
				for _, line := range strings.Split(s, "\n") {
					fmt.Fprintf(w, "        %s\n", line)
				}
			}
		}
	}
	fmt.Fprintf(w, "%d OK, %d WARN, %d FAIL\n", counts[statusOK], counts[statusWarn], counts[statusFail])
}
