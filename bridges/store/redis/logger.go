package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// SetLogger sends what the Redis client library logs itself (failed
// dials, pool trouble) to l, at level warn with component=redis, instead
// of its own unstructured lines on stderr, which break a JSON log. The
// library's logger is process-wide: the last call wins.
func SetLogger(l *slog.Logger) {
	goredis.SetLogger(clientLog{l})
}

// clientLog adapts slog to the client library's Printf logger.
type clientLog struct{ l *slog.Logger }

func (c clientLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	c.l.Log(ctx, slog.LevelWarn, msg, "component", "redis")
}
