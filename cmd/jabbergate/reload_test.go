package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/config"
)

func parseConfig(t *testing.T, dir, extra string) *config.Config {
	t.Helper()
	y := `xmpp:
  server: 127.0.0.1:5347
bridges:
  - network: echo
    domain: echo.localhost
    secret: s3cret-s3cret
` + extra
	if !strings.Contains(extra, "access:") {
		y += "access:\n  allowed_domains: [localhost]\n"
	}
	cfg, err := config.Parse(filepath.Join(dir, "jabbergate.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRestartOnlySettings(t *testing.T) {
	dir := t.TempDir()
	old := parseConfig(t, dir, "log:\n  level: info\n")
	// Bridges, xmpp, access and log.level are reloadable: nothing to
	// restart for them.
	same := parseConfig(t, dir, "log:\n  level: debug\naccess:\n  allowed_domains: ['*']\n  admins: [a@localhost]\n")
	same.Bridges = nil
	same.XMPP.Server = "127.0.0.1:5348"
	if k := restartOnly(old, same); len(k) != 0 {
		t.Errorf("restartOnly = %q, want none", k)
	}
	cfg := parseConfig(t, dir, "log:\n  level: info\n  format: json\nhttp:\n  listen: 127.0.0.1:1\nstore:\n  backend: bolt\n  path: /tmp/other.db\n")
	got := restartOnly(old, cfg)
	for _, want := range []string{"store", "http", "log (other than log.level)"} {
		if !slices.Contains(got, want) {
			t.Errorf("restartOnly = %q, want %s in it", got, want)
		}
	}
	keepProcessSettings(old, cfg)
	if cfg.HTTP != old.HTTP || cfg.Store != old.Store || cfg.Log.Format != old.Log.Format {
		t.Errorf("process settings not kept: %+v %+v %q", cfg.HTTP, cfg.Store, cfg.Log.Format)
	}
	if k := restartOnly(old, cfg); len(k) != 0 {
		t.Errorf("after keepProcessSettings restartOnly = %q", k)
	}
}

func TestLevelLoggerChangesInPlace(t *testing.T) {
	var buf bytes.Buffer
	log, lv := newLevelLogger(config.Log{Level: "info", Format: "text"}, &buf)
	log.Debug("hidden")
	lv.Set(slog.LevelDebug)
	log.Debug("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown") {
		t.Errorf("log = %q", s)
	}
}

// JSON logs write durations as text ("31.5s"), as the text format does.
func TestJSONLogDurationsReadable(t *testing.T) {
	for _, mk := range []func(io.Writer) *slog.Logger{
		func(w io.Writer) *slog.Logger { return newLogger(config.Log{Level: "info", Format: "json"}, w) },
		func(w io.Writer) *slog.Logger {
			l, _ := newLevelLogger(config.Log{Level: "info", Format: "json"}, w)
			return l
		},
	} {
		var buf bytes.Buffer
		mk(&buf).Info("retry", "in", 31500*time.Millisecond)
		if s := buf.String(); !strings.Contains(s, `"in":"31.5s"`) {
			t.Errorf("log = %q", s)
		}
	}
}
