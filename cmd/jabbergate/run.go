package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jabbergate/jabbergate/bridges"
	"github.com/jabbergate/jabbergate/bridges/config"
	"github.com/jabbergate/jabbergate/bridges/media"
	"github.com/jabbergate/jabbergate/bridges/metrics"
	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
	"github.com/jabbergate/jabbergate/bridges/vault"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/legacy"
)

// newLogger builds the slog logger the config asks for.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openStore opens the configured backend.
func openStore(ctx context.Context, cfg config.Store) (store.Store, error) {
	switch cfg.Backend {
	case "redis":
		return redisstore.Open(ctx, cfg.Redis.URL, redisstore.Options{Prefix: cfg.Redis.Prefix})
	default:
		return bolt.Open(cfg.Path)
	}
}

// openVault loads the credential sealing key.
func openVault(cfg config.Vault) (*vault.Vault, error) {
	var key []byte
	var err error
	if cfg.Key != "" {
		key, err = vault.DecodeKey(cfg.Key)
	} else {
		key, err = vault.LoadOrCreateKey(cfg.KeyFile)
	}
	if err != nil {
		return nil, err
	}
	return vault.New(map[int][]byte{1: key})
}

// openMedia builds the media store. Without media.key or media.key_file
// the URL signing key is derived from the vault key.
func openMedia(cfg *config.Config, log *slog.Logger) (*media.Store, error) {
	key := []byte(cfg.Media.Key)
	if len(key) == 0 {
		var vk []byte
		var err error
		if cfg.Vault.Key != "" {
			vk, err = vault.DecodeKey(cfg.Vault.Key)
		} else {
			vk, err = vault.LoadOrCreateKey(cfg.Vault.KeyFile)
		}
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
	// webhooks are the adapters' push receivers by bridge domain.
	webhooks map[string]http.Handler
	media    *media.Store
}

// run wires everything from cfg and runs until ctx ends.
func run(ctx context.Context, cfg *config.Config, logOut io.Writer) error {
	log := newLogger(cfg.Log, logOut)
	m := metrics.New(bridges.Version)

	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return &configError{err}
		}
		return fmt.Errorf("open %s store: %w", cfg.Store.Backend, err)
	}
	defer st.Close()
	v, err := openVault(cfg.Vault)
	if err != nil {
		return &configError{fmt.Errorf("vault: %w", err)}
	}

	ms, err := openMedia(cfg, log)
	if err != nil {
		return &configError{fmt.Errorf("media: %w", err)}
	}
	if !ms.Enabled() {
		log.Info("media.base_url is not set: files from legacy contacts arrive as a text note")
	}
	g := &gateway{log: log, store: m.Store(st), metrics: m, media: ms}
	for _, bc := range cfg.Bridges {
		nw, err := legacy.New(bc.Network, bc.Options)
		if wh, ok := nw.(legacy.Webhooker); ok && err == nil {
			if g.webhooks == nil {
				g.webhooks = map[string]http.Handler{}
			}
			g.webhooks[bc.Domain] = wh.Webhook()
		}
		if err != nil {
			return &configError{fmt.Errorf("bridge %s: %w", bc.Domain, err)}
		}
		server := bc.Server
		if server == "" {
			server = cfg.XMPP.Server
		}
		bm := m.Bridge(bc.Domain)
		b, err := bridges.New(bridges.Options{
			Domain:         bc.Domain,
			Name:           bc.Name,
			Network:        nw,
			Store:          g.store,
			Vault:          v,
			AllowedDomains: cfg.Access.AllowedDomains,
			Admins:         cfg.Access.Admins,
			Logger:         log,
			Observer:       bm,
			Media:          ms,
			Link: component.Config{
				Addr:          server,
				Secret:        bc.Secret,
				MaxStanzaSize: int(cfg.XMPP.MaxStanzaSize),
				PingInterval:  cfg.XMPP.PingInterval,
				PingTimeout:   cfg.XMPP.PingTimeout,
				Observer:      bm,
			},
		})
		if err != nil {
			return &configError{fmt.Errorf("bridge %s: %w", bc.Domain, err)}
		}
		g.bridges = append(g.bridges, b)
	}

	var srv *http.Server
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return &configError{fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)}
		}
		srv = &http.Server{Handler: g.handler(), ReadHeaderTimeout: 10 * time.Second}
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
	errs := make([]error, len(g.bridges))
	for i, b := range g.bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Run(ctx)
		}()
	}
	wg.Wait()
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	log.Info("jabbergate stopped")
	return errors.Join(errs...)
}

// handler serves /metrics, /healthz and /readyz.
func (g *gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.metrics.Registry, promhttp.HandlerOpts{Registry: g.metrics.Registry}))
	if g.media != nil && g.media.Enabled() {
		mux.Handle(media.Prefix, g.media.Handler())
	}
	// Adapters that receive pushes from their legacy network get
	// /webhooks/<bridge domain>/, with that prefix stripped.
	for domain, h := range g.webhooks {
		prefix := "/webhooks/" + domain
		mux.Handle(prefix+"/", http.StripPrefix(prefix, g.metrics.Webhook(domain, h)))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		var problems []string
		for _, b := range g.bridges {
			if !b.Link().Up() {
				problems = append(problems, "link "+b.Domain()+" down")
			}
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
