package main

// Configuration reload on SIGHUP (systemd: ExecReload=/bin/kill -HUP
// $MAINPID).
//
// The file is loaded and checked exactly as `jabbergate run` does at start
// (config.Load, then every bridge's network options). A file with errors is
// refused: each problem is logged on its own line with its file:line, and
// the running configuration stays in force.
//
// A valid file is applied bridge by bridge, matched by domain:
//
//   - unchanged: the bridge is not touched; its component link (same
//     stream), legacy sessions and queues carry on.
//   - changed (anything in its bridges[] entry — network, secret or the
//     content of its secret_file, server, name, options — or in the xmpp
//     section or access.rate_limit, which every bridge uses): that bridge
//     alone is stopped as on SIGTERM (unavailable presences to its users,
//     queues left in the store, link closed) and started again with the
//     new settings. A bridge that had stopped on its own is started again
//     too.
//   - removed: stopped the same way; its metric series are dropped.
//   - added: started.
//
// Applied in place, without any restart: log.level, and
// access.allowed_domains and access.admins (to every bridge). Adapters'
// own rate limits live in their options, so changing them restarts that
// bridge; access.rate_limit restarts every bridge (the limiter has no
// setter yet).
//
// Not reloaded: the store, the HTTP listener, the vault, media, cluster
// and log.format (and any other section not named above). A change there is
// logged as "restart required" on every reload until the process is
// restarted, and meanwhile the running values stay in force — new bridges
// share the running store, vault and media.
//
// Under systemd RELOADING=1 (with MONOTONIC_USEC) is sent when a reload
// begins and READY=1 once it has been applied or refused.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/legacy"
)

// liveState is the part of a running gateway that a reload changes.
type liveState struct {
	// mu guards gateway.bridges, gateway.webhooks and running; only the
	// goroutine running serveBridges writes them.
	mu      sync.RWMutex
	running map[string]*runningBridge // by domain

	file  string         // the config file SIGHUP reloads; "" disables reloading
	cfg   *config.Config // the configuration in force
	level *slog.LevelVar // log.level, changed in place
	vault *vault.Vault   // shared by every bridge, never reloaded
	wg    sync.WaitGroup // one per bridge goroutine
	ended chan struct{}  // a bridge's Run returned (made by serveBridges)
}

// runningBridge is one bridge and the config it was built from.
type runningBridge struct {
	bc     config.Bridge
	xmpp   config.XMPP
	rate   config.RateLimit
	b      *bridges.Bridge
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned; err is then set
	err    error
}

// ended reports whether the bridge's Run has returned.
func (rb *runningBridge) ended() bool {
	select {
	case <-rb.done:
		return true
	default:
		return false
	}
}

// newLevelLogger is newLogger with its level in a LevelVar, so a reload can
// change it.
func newLevelLogger(cfg config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	_ = lv.UnmarshalText([]byte(cfg.Level)) // checked by config; "" stays info
	opts := &slog.HandlerOptions{Level: lv}
	if cfg.Format == "json" {
		opts.ReplaceAttr = readableDurations
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}

// newBridge builds, without I/O, the bridge bc describes, and returns the
// adapter's webhook handler when the network has one.
func (g *gateway) newBridge(cfg *config.Config, bc config.Bridge) (*bridges.Bridge, http.Handler, error) {
	nw, err := legacy.New(bc.Network, bc.Options)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge %s: %w", bc.Domain, err)
	}
	var hook http.Handler
	if wh, ok := nw.(legacy.Webhooker); ok {
		hook = wh.Webhook()
	}
	server := bc.Server
	if server == "" {
		server = cfg.XMPP.Server
	}
	bm := g.metrics.Bridge(bc.Domain)
	bm.InitNetwork(nw.Info().Name)
	bm.WatchNetwork(nw.Info().Name, nw)
	b, err := bridges.New(bridges.Options{
		Domain:         bc.Domain,
		Name:           bc.Name,
		Network:        nw,
		Store:          g.store,
		Vault:          g.live.vault,
		AllowedDomains: cfg.Access.AllowedDomains,
		Admins:         cfg.Access.Admins,
		Logger:         g.log,
		Observer:       bm,
		Media:          g.media,
		RateLimit:      cfg.Access.RateLimit.PerSecond,
		RateBurst:      cfg.Access.RateLimit.Burst,
		InboxLimit:     bc.InboxLimit,
		Cluster:        g.clusterOptions(cfg, bc), // cluster.go
		Link: component.Config{
			Addr:          server,
			Secret:        bc.Secret,
			MaxStanzaSize: int(cfg.XMPP.MaxStanzaSize),
			MaxDepth:      cfg.XMPP.MaxElementDepth,
			PingInterval:  cfg.XMPP.PingInterval,
			PingTimeout:   cfg.XMPP.PingTimeout,
			Observer:      bm,
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bridge %s: %w", bc.Domain, err)
	}
	return b, hook, nil
}

// setWebhook installs (h != nil) or removes the adapter webhook handler of
// a bridge domain, counted by jabbergate_webhook_requests_total. The caller
// holds g.live.mu.
func (g *gateway) setWebhook(domain string, h http.Handler) {
	if h == nil {
		delete(g.webhooks, domain)
		return
	}
	if g.webhooks == nil {
		g.webhooks = map[string]http.Handler{}
	}
	prefix := "/webhooks/" + domain
	g.webhooks[domain] = http.StripPrefix(prefix, g.metrics.Webhook(domain, h))
}

// webhookHandler serves /webhooks/<bridge domain>/… with the handler of
// the bridge running now under that domain.
func (g *gateway) webhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/webhooks/")
		domain, _, slash := strings.Cut(rest, "/")
		g.live.mu.RLock()
		h := g.webhooks[domain]
		g.live.mu.RUnlock()
		switch {
		case h == nil:
			http.NotFound(w, r)
		case !slash:
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// bridgeList returns the bridges running now.
func (g *gateway) bridgeList() []*bridges.Bridge {
	g.live.mu.RLock()
	defer g.live.mu.RUnlock()
	return slices.Clone(g.bridges)
}

// startBridge runs b in its own goroutine until ctx ends or it is stopped.
func (g *gateway) startBridge(ctx context.Context, cfg *config.Config, bc config.Bridge, b *bridges.Bridge) *runningBridge {
	bctx, cancel := context.WithCancel(ctx)
	rb := &runningBridge{bc: bc, xmpp: cfg.XMPP, rate: cfg.Access.RateLimit, b: b, cancel: cancel, done: make(chan struct{})}
	g.live.wg.Add(1)
	go func() {
		defer g.live.wg.Done()
		rb.err = b.Run(bctx)
		close(rb.done)
		select {
		case g.live.ended <- struct{}{}:
		default:
		}
	}()
	return rb
}

// serveBridges runs the bridges in g.bridges (built from cfg.Bridges, in
// that order) until ctx ends or every bridge has stopped on its own,
// reloading the config file on SIGHUP when g.live.file is set. It returns
// the errors of the bridges running at the end.
func (g *gateway) serveBridges(ctx context.Context, cfg *config.Config) error {
	g.live.mu.Lock()
	g.live.cfg = cfg
	g.live.ended = make(chan struct{}, 1)
	g.live.running = map[string]*runningBridge{}
	for i, b := range g.bridges {
		g.live.running[b.Domain()] = g.startBridge(ctx, cfg, cfg.Bridges[i], b)
	}
	g.live.mu.Unlock()

	var hup chan os.Signal
	if g.live.file != "" {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			g.reload(ctx)
		case <-g.live.ended:
			done = g.allEnded()
		}
	}
	g.live.wg.Wait()
	g.live.mu.RLock()
	defer g.live.mu.RUnlock()
	var errs []error
	for _, b := range g.bridges {
		errs = append(errs, g.live.running[b.Domain()].err)
	}
	return errors.Join(errs...)
}

// allEnded reports whether every bridge has stopped.
func (g *gateway) allEnded() bool {
	g.live.mu.RLock()
	defer g.live.mu.RUnlock()
	for _, rb := range g.live.running {
		if !rb.ended() {
			return false
		}
	}
	return true
}

// reload loads the config file again and applies it (see the file
// comment). It returns once every change is in force.
func (g *gateway) reload(ctx context.Context) {
	sd := sdNotifierFromEnv(os.Getenv, g.log)
	if err := sd.notify("RELOADING=1", "MONOTONIC_USEC="+monotonicUsec(), "STATUS=reloading the configuration"); err != nil {
		g.log.Warn("systemd notification failed", "err", err)
	}
	status := g.applyFile(ctx)
	if err := sd.notify("READY=1", "STATUS="+status); err != nil {
		g.log.Warn("systemd notification failed", "err", err)
	}
}

// applyFile is reload without the systemd notifications; it returns a
// one-line status.
func (g *gateway) applyFile(ctx context.Context) string {
	file := g.live.file
	g.log.Info("reloading configuration", "file", file)
	cfg, err := config.Load(file)
	if err == nil {
		err = checkNetworks(file, cfg)
	}
	if err != nil {
		problems := config.Errors(err)
		for _, p := range problems {
			g.log.Error("configuration reload refused: the running configuration stays in force", "problem", p.Error())
		}
		if len(problems) == 0 {
			g.log.Error("configuration reload refused: the running configuration stays in force", "problem", err.Error())
		}
		return "running; configuration reload refused: " + strconv.Itoa(max(1, len(problems))) + " error(s) in " + file
	}
	if err := g.apply(ctx, cfg); err != nil {
		g.log.Error("configuration reload refused: the running configuration stays in force", "problem", err.Error())
		return "running; configuration reload refused: " + err.Error()
	}
	return "running; configuration reloaded"
}

// restartOnly returns the top-level keys whose change takes a process
// restart, as their yaml names: every section except bridges, xmpp and
// access (applied by apply), and log whose level alone is applied in
// place.
func restartOnly(old, cfg *config.Config) []string {
	var keys []string
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cfg).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		switch name {
		case "bridges", "xmpp", "access":
			continue
		case "log":
			ol, nl := old.Log, cfg.Log
			ol.Level, nl.Level = "", ""
			if !reflect.DeepEqual(ol, nl) {
				keys = append(keys, "log (other than log.level)")
			}
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			keys = append(keys, name)
		}
	}
	return keys
}

// keepProcessSettings copies into cfg, from old, every setting that only a
// restart applies, so cfg describes what really runs.
func keepProcessSettings(old, cfg *config.Config) {
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cfg).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		switch name {
		case "bridges", "xmpp", "access":
		case "log":
			level := cfg.Log.Level
			cfg.Log = old.Log
			cfg.Log.Level = level
		default:
			nv.Field(i).Set(ov.Field(i))
		}
	}
}

// apply puts cfg in force: settings applied in place, then the bridges
// that changed are stopped and started again. New bridges are built
// before anything is stopped, so a bridge that cannot be built leaves
// everything as it was.
func (g *gateway) apply(ctx context.Context, cfg *config.Config) error {
	old := g.live.cfg
	for _, k := range restartOnly(old, cfg) {
		g.log.Warn("configuration change ignored until jabbergate is restarted (restart required)", "key", k)
	}
	keepProcessSettings(old, cfg)

	type change struct {
		bc   config.Bridge
		old  *runningBridge // nil when added
		b    *bridges.Bridge
		hook http.Handler
	}
	var changes []change
	var unchanged []*runningBridge
	g.live.mu.RLock()
	running := make(map[string]*runningBridge, len(g.live.running))
	for d, rb := range g.live.running {
		running[d] = rb
	}
	g.live.mu.RUnlock()
	keep := map[string]bool{}
	for _, bc := range cfg.Bridges {
		keep[bc.Domain] = true
		rb := running[bc.Domain]
		if rb != nil && !rb.ended() && reflect.DeepEqual(rb.bc, bc) && reflect.DeepEqual(rb.xmpp, cfg.XMPP) && rb.rate == cfg.Access.RateLimit {
			unchanged = append(unchanged, rb)
			continue
		}
		b, hook, err := g.newBridge(cfg, bc)
		if err != nil {
			return err
		}
		changes = append(changes, change{bc: bc, old: rb, b: b, hook: hook})
	}
	var removed []*runningBridge
	for d, rb := range running {
		if !keep[d] {
			removed = append(removed, rb)
		}
	}

	// In place.
	if old.Log.Level != cfg.Log.Level {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(cfg.Log.Level)); err == nil {
			g.live.level.Set(lv)
			g.log.Info("log level changed", "level", cfg.Log.Level)
		}
	}
	if !slices.Equal(old.Access.AllowedDomains, cfg.Access.AllowedDomains) || !slices.Equal(old.Access.Admins, cfg.Access.Admins) {
		for _, rb := range unchanged {
			rb.b.SetAccess(cfg.Access.AllowedDomains, cfg.Access.Admins)
		}
		g.log.Info("access lists changed", "allowed_domains", len(cfg.Access.AllowedDomains), "admins", len(cfg.Access.Admins))
	}

	// Stop what changed or went away, all at once.
	var stopping []*runningBridge
	for _, c := range changes {
		if c.old != nil {
			why := "configuration changed"
			if c.old.ended() {
				why = "it had stopped"
			}
			g.log.Info("restarting bridge", "bridge", c.bc.Domain, "network", c.bc.Network, "why", why)
			stopping = append(stopping, c.old)
		} else {
			g.log.Info("adding bridge", "bridge", c.bc.Domain, "network", c.bc.Network)
		}
	}
	for _, rb := range removed {
		g.log.Info("removing bridge", "bridge", rb.b.Domain(), "network", rb.b.Info().Name)
		stopping = append(stopping, rb)
	}
	for _, rb := range stopping {
		rb.cancel()
	}
	for _, rb := range stopping {
		g.waitStopped(rb)
		if rb.err != nil {
			g.log.Warn("bridge ended with an error", "bridge", rb.b.Domain(), "network", rb.b.Info().Name, "err", rb.err)
		}
	}

	g.live.mu.Lock()
	for _, rb := range stopping {
		d := rb.b.Domain()
		delete(g.live.running, d)
		g.setWebhook(d, nil)
		g.metrics.RemoveBridge(d)
	}
	for _, c := range changes {
		bm := g.metrics.Bridge(c.bc.Domain) // series again after RemoveBridge
		bm.InitNetwork(c.b.Info().Name)
		g.setWebhook(c.bc.Domain, c.hook)
		g.live.running[c.bc.Domain] = g.startBridge(ctx, cfg, c.bc, c.b)
	}
	g.bridges = g.bridges[:0:0]
	for _, bc := range cfg.Bridges {
		g.bridges = append(g.bridges, g.live.running[bc.Domain].b)
	}
	g.live.cfg = cfg
	g.live.mu.Unlock()

	var restarted, added []string
	for _, c := range changes {
		if c.old != nil {
			restarted = append(restarted, c.bc.Domain)
		} else {
			added = append(added, c.bc.Domain)
		}
	}
	var gone []string
	for _, rb := range removed {
		gone = append(gone, rb.b.Domain())
	}
	g.log.Info("configuration reloaded", "unchanged", len(unchanged), "restarted", restarted, "added", added, "removed", gone)
	return nil
}

// waitStopped waits for a stopped bridge's Run to return, saying so in the
// log while it takes long (a legacy session that does not end on
// cancellation; the process's stop timeout bounds the same wait on
// SIGTERM).
func (g *gateway) waitStopped(rb *runningBridge) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-rb.done:
			return
		case <-t.C:
			g.log.Warn("waiting for bridge to stop", "bridge", rb.b.Domain(), "network", rb.b.Info().Name)
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, for MONOTONIC_USEC=.
func monotonicUsec() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "0"
	}
	return strconv.FormatInt(ts.Nano()/1000, 10)
}
