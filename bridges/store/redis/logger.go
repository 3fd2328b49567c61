package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// SetLogger sends what the Redis client library logs itself (failed
// dials, pool trouble) to l, at level warn (info for the Sentinel
// client's normal news) with component=redis, instead
// of its own unstructured lines on stderr, which break a JSON log. The
// library's logger is process-wide: the last call wins.
func SetLogger(l *slog.Logger) {
	goredis.SetLogger(clientLog{l})
}

// clientLog adapts slog to the client library's Printf logger.
type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	c.l.Log(ctx, clientLogLevel(msg), msg, "component", "redis")
}

// clientLogLevel is info for the Sentinel client's news of the normal
// course (the master it found, a new master after a failover, sentinels
// discovered), warn for everything else (failed dials, pool trouble).
func clientLogLevel(msg string) slog.Level {
	for _, news := range []string{"sentinel: selected addr", "sentinel: new master", "sentinel: discovered new sentinel", "sentinel: new replica"} {
		if strings.Contains(msg, news) {
			return slog.LevelInfo
		}
	}
	return slog.LevelWarn
}
