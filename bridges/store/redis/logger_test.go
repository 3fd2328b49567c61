package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// What the client library logs (here a dial to a port nothing listens
// on) becomes one JSON record of the gateway's logger.
func TestClientLibraryLogsThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	SetLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { SetLogger(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))) })
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	_ = c.Ping(context.Background()).Err()
	deadline := time.Now().Add(5 * time.Second)
	for buf.Len() == 0 && time.Now().Before(deadline) {
		_ = c.Ping(context.Background()).Err()
		time.Sleep(50 * time.Millisecond)
	}
	if buf.Len() == 0 {
		t.Fatal("nothing logged through slog for a refused dial")
	}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil || rec["component"] != "redis" || rec["level"] != "WARN" {
			t.Errorf("log line %q: %v", line, err)
		}
	}
}

// The Sentinel client's normal news is info, not a warning.
func TestClientLogLevels(t *testing.T) {
	for msg, want := range map[string]slog.Level{
		`sentinel: selected addr=127.0.0.1:26379 masterAddr=127.0.0.1:6379`:                  slog.LevelInfo,
		`sentinel: new master="mymaster" addr="127.0.0.1:6380"`:                              slog.LevelInfo,
		`sentinel: GetMasterAddrByName name="mymaster" failed: EOF`:                          slog.LevelWarn,
		`failed to dial after 5 attempts: dial tcp 127.0.0.1:1: connect: connection refused`: slog.LevelWarn,
	} {
		if got := clientLogLevel(msg); got != want {
			t.Errorf("level of %q = %v, want %v", msg, got, want)
		}
	}
}
