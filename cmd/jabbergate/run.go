package main

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/media"
	"github.com/jabbergate/jabbergate/bridges/metrics"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	pebblestore "github.com/jabbergate/jabbergate/bridges/store/pebble"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/vault"
)

// The metrics observe what the bridges report.
var (
	_ bridges.OutboxObserver  = (*metrics.BridgeMetrics)(nil)
	_ bridges.SessionObserver = (*metrics.BridgeMetrics)(nil)
	_ bridges.StandbyObserver = (*metrics.BridgeMetrics)(nil)
)

// linkProblem is what /readyz and the systemd readiness say of a bridge's
// link: nothing while it is up; "standby" for a cluster standby, whose
// link is down by design (not ready: another instance serves).
func linkProblem(b *bridges.Bridge) []string {
	switch {
	case b.Link().Up():
		return nil
	case b.Standby():
		return []string{"link " + b.Domain() + " standby"}
	}
	return []string{"link " + b.Domain() + " down"}
}

// newLogger builds the slog logger the config asks for.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		opts.ReplaceAttr = readableDurations
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// readableDurations writes durations as "31.5s", as the text format does,
// instead of the JSON handler's nanoseconds.
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// openStore opens the configured backend.
func openStore(ctx context.Context, cfg config.Store) (store.Store, error) {
	switch cfg.Backend {
	case "redis":
		return redisstore.Open(ctx, cfg.Redis.URL, redisstore.Options{Prefix: cfg.Redis.Prefix})
	case "pebble":
		return pebblestore.Open(cfg.Path)
	default:
		return bolt.Open(cfg.Path)
	}
}

// openVault loads the credential sealing key: vault.key, or the key in
// vault.key_file, which must exist (ensureVaultKey creates it).
func openVault(cfg config.Vault) (*vault.Vault, error) {
	key, err := currentKey(cfg) // admin.go
	if err != nil {
		return nil, err
	}
	return vaultWithOldKeys(key, cfg.OldKeys) // admin.go
}

// ensureVaultKey creates a missing vault.key_file with a new random key,
// logging its path, when the store holds no registered account of the
// config's bridges. With accounts it creates nothing and returns a
// configuration error at vault.key_file: their credentials were sealed
// with another key, which a new one would not open (a typo in the path,
// or a lost file). file is the config file, for the error.
func ensureVaultKey(ctx context.Context, file string, cfg *config.Config, st store.Store, log *slog.Logger) error {
	kf := cfg.Vault.KeyFile
	if cfg.Vault.Key != "" || kf == "" {
		return nil
	}
	if _, err := os.Stat(kf); !errors.Is(err, fs.ErrNotExist) {
		return nil // openVault reads it, or says why it cannot
	}
	at := func(problem string) error {
		return &configError{&config.Error{File: file, Line: cfg.Line("vault.key_file"), Key: "vault.key_file", Problem: problem}}
	}
	accounts, err := countAccounts(ctx, st, cfg) // main.go
	if err != nil {
		return fmt.Errorf("vault: key file %s does not exist; cannot tell whether the store holds accounts sealed with another key: %w", kf, err)
	}
	if accounts > 0 {
		return at(missingKeyProblem(kf, accounts))
	}
	if _, err := vault.CreateKey(kf); err != nil {
		return at(strings.TrimPrefix(err.Error(), "vault: "))
	}
	log.Info("created a new credential sealing key, as no account is registered yet; back it up: stored credentials open only with it", "component", "vault", "path", kf)
	return nil
}

// warnNewStoreOldKey logs a warning when the embedded store is about to
// be created (no bolt file, no pebble database in the directory) while
// vault.key_file already exists: a key is made together with the first
// store, so the store may have been moved, deleted or mistyped, and the
// gateway would start with no users.
func warnNewStoreOldKey(cfg *config.Config, log *slog.Logger) {
	kf := cfg.Vault.KeyFile
	if kf == "" || cfg.Vault.Key != "" || cfg.Store.Backend == "redis" {
		return
	}
	if _, err := os.Stat(kf); err != nil {
		return
	}
	if !storeMissingAt(cfg.Store) {
		return
	}
	log.Warn("the store does not exist and is created empty, but the credential sealing key beside it exists: if the store was moved or deleted, stop the gateway and restore it (or correct store.path); users registered before are not loaded",
		"component", "store", "backend", cmp.Or(cfg.Store.Backend, "bolt"), "path", cfg.Store.Path, "key_file", kf)
}

// vaultError is the configuration error of a key openVault could not use.
func vaultError(file string, cfg *config.Config, err error) error {
	if cfg.Vault.Key != "" || cfg.Vault.KeyFile == "" {
		return &configError{err}
	}
	problem := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "vault: "), "key file ")
	return &configError{&config.Error{File: file, Line: cfg.Line("vault.key_file"), Key: "vault.key_file", Problem: problem}}
}

// openMedia builds the media store. Without media.key or media.key_file
// the URL signing key is derived from the vault key.
func openMedia(cfg *config.Config, log *slog.Logger) (*media.Store, error) {
	key := []byte(cfg.Media.Key)
	if len(key) == 0 {
		vk, err := currentKey(cfg.Vault)
		if err != nil {
			return nil, err
		}
		mac := hmac.New(sha256.New, vk)
		mac.Write([]byte("jabbergate media URL signing key v1"))
		key = mac.Sum(nil)
	}
	return media.New(media.Options{
		Dir:          cfg.Media.Dir,
		BaseURL:      cfg.Media.BaseURL,
		Key:          key,
		TTL:          cfg.Media.TTL,
		MaxSize:      int64(cfg.Media.MaxSize),
		FetchTimeout: cfg.Media.FetchTimeout,
		AllowPrivate: cfg.Media.AllowPrivateFetch,
		Logger:       log.With("component", "media"),
	})
}

// gateway is the running process: its bridges, store and HTTP listener.
type gateway struct {
	log     *slog.Logger
	store   store.Store
	metrics *metrics.Metrics
	bridges []*bridges.Bridge
	// webhooks are the adapters' push receivers by bridge domain, ready
	// to serve (prefix stripped, counted); see setWebhook.
	webhooks map[string]http.Handler
	media    *media.Store
	// live is what a config reload changes (reload.go); its mutex guards
	// bridges and webhooks.
	live liveState
	// raw is the store as opened, for its optional store.Leaser and
	// store.Notifier (store is wrapped for metrics); cluster.go.
	raw store.Store
}

// run wires everything from cfg and runs until ctx ends. configFile, when
// given, is the file cfg was loaded from: SIGHUP reloads it (reload.go).
func run(ctx context.Context, cfg *config.Config, logOut io.Writer, configFile ...string) error {
	log, level := newLevelLogger(cfg.Log, logOut)
	redisstore.SetLogger(log) // the Redis client's own lines, structured
	m := metrics.New(bridges.Version)

	file := ""
	if len(configFile) > 0 {
		file = configFile[0]
	}
	warnNewStoreOldKey(cfg, log)
	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		// A store held by another process, or damaged: restarting does
		// not help, an admin must act (exitConfig, not restarted).
		if errors.Is(err, store.ErrLocked) || errors.Is(err, store.ErrCorrupt) {
			return &configError{err}
		}
		return fmt.Errorf("open %s store: %w", cfg.Store.Backend, err)
	}
	defer st.Close()
	if err := ensureVaultKey(ctx, file, cfg, st, log); err != nil {
		return err
	}
	v, err := openVault(cfg.Vault)
	if err != nil {
		return vaultError(file, cfg, err)
	}

	ms, err := openMedia(cfg, log)
	if err != nil {
		return &configError{fmt.Errorf("media: %w", err)}
	}
	if !ms.Enabled() {
		log.Info("media.base_url is not set: files from legacy contacts arrive as a text note")
	}
	g := &gateway{log: log, store: m.Store(st), metrics: m, media: ms, raw: st}
	g.live.level, g.live.vault = level, v
	if len(configFile) > 0 { // the real process, not a test
		g.live.file = configFile[0]
		slog.SetDefault(log) // adapters log through the default logger: let it follow log.level reloads
		go tuneGC(ctx, log)  // gctune.go
	}
	for _, bc := range cfg.Bridges {
		b, hook, err := g.newBridge(cfg, bc) // reload.go
		if err != nil {
			return &configError{err}
		}
		g.setWebhook(bc.Domain, hook)
		g.bridges = append(g.bridges, b)
	}

	var srv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			problem := fmt.Sprintf("cannot listen on %s: %v", cfg.HTTP.Listen, errors.Unwrap(err))
			if errors.Is(err, syscall.EADDRINUSE) {
				problem += " (another process has this port: stop it, or give another address, or \"off\")"
			}
			if len(configFile) > 0 {
				return &configError{&config.Error{File: configFile[0], Line: cfg.Line("http.listen"), Key: "http.listen", Problem: problem}}
			}
			return &configError{fmt.Errorf("http.listen: %s", problem)}
		}
		srv = &http.Server{Handler: g.handler(cfg.HTTP.PProf), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http listener failed", "err", err)
			}
		}()
		log.Info("http listening", "addr", ln.Addr().String())
	}

	log.Info("jabbergate starting", "version", bridges.Version, "bridges", len(g.bridges), "store", cfg.Store.Backend)
	defer g.notifySystemd(ctx)() // sd_notify: READY=1, WATCHDOG=1, STOPPING=1 (sdnotify.go)
	var wg sync.WaitGroup
	if ms.Enabled() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms.Run(ctx, 0) // deletes expired files
		}()
	}
	bridgesErr := g.serveBridges(ctx, cfg) // runs them, reloads on SIGHUP (reload.go)
	wg.Wait()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	log.Info("jabbergate stopped")
	return bridgesErr
}

// handler serves /metrics, /healthz and /readyz (and /debug/pprof/ when
// the config turns it on).
func (g *gateway) handler(pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{Registry: g.metrics.Registry}))
	if g.media != nil && g.media.Enabled() {
		mux.Handle(media.Prefix, g.media.Handler())
	}
	// Adapters that receive pushes from their legacy network get
	// /webhooks/<bridge domain>/, with that prefix stripped, from the
	// bridge running now (setWebhook, reload.go).
	mux.Handle("/webhooks/", limitBody(g.webhookHandler(), maxWebhookBody)) // 413 past the limit (admin.go)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		for _, b := range g.bridgeList() {
			problems = append(problems, linkProblem(b)...)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := g.store.Ping(ctx); err != nil {
			problems = append(problems, "store unreachable: "+err.Error())
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
