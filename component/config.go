package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config configures a Link. Addr, Domain and Secret are required; zero
// values of the other fields select the documented defaults.
type Config struct {
	Addr          string                             // host:port of the XMPP server's component listener
	Domain        string                             // component domain, e.g. "echo.localhost"
	Secret        string                             // shared secret of the XEP-0114 handshake
	PingTo        string                             // JID the keepalive/barrier ping is sent to; default: Domain minus its first label ("echo.localhost" -> "localhost"); any IQ answer (result or error) counts as an answer
	MaxStanzaSize int                                // bytes, default 256*1024
	MaxDepth      int                                // element nesting limit of a stanza read (the stanza is depth 1), default 32; a deeper stanza is refused to its sender (policy-violation), the link stays up
	PingInterval  time.Duration                      // keepalive ping period, default 30s
	PingTimeout   time.Duration                      // default 30s; a dead link must be detected within 90s with defaults; a late answer while stanzas are still being read or handled (we are the slow side) does not end the link
	DialTimeout   time.Duration                      // default 10s; bounds the TCP dial and, separately, the stream handshake
	MinBackoff    time.Duration                      // default 500ms
	MaxBackoff    time.Duration                      // default 60s
	AuthBackoff   time.Duration                      // minimum wait after a not-authorized/host-unknown/conflict/invalid-namespace stream error before retrying, default 30s (never a tight loop)
	WriteQueue    int                                // stanzas buffered for writing per connection, default 1024
	Logger        *slog.Logger                       // default slog.Default()
	Observer      Observer                           // optional, may be nil
	OnUp          func(ctx context.Context, c *Conn) // optional; called in its own goroutine after every successful handshake; ctx ends when that connection ends
}

// Defaults of the Config fields.
const (
	defaultMaxStanzaSize = 256 * 1024
	defaultMaxDepth      = 32
	defaultPingInterval  = 30 * time.Second
	defaultPingTimeout   = 30 * time.Second
	defaultDialTimeout   = 10 * time.Second
	defaultMinBackoff    = 500 * time.Millisecond
	defaultMaxBackoff    = 60 * time.Second
	defaultAuthBackoff   = 30 * time.Second
	defaultWriteQueue    = 1024
)

// withDefaults validates c and returns a copy with defaults applied.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, errors.New("component: Config.Addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, fmt.Errorf("component: Config.Addr %q: %w", c.Addr, err)
	}
	if c.Domain == "" {
		return c, errors.New("component: Config.Domain is required")
	}
	if strings.ContainsAny(c.Domain, "@/ \t\r\n'\"<>&") || strings.HasPrefix(c.Domain, ".") || strings.HasSuffix(c.Domain, ".") {
		return c, fmt.Errorf("component: Config.Domain %q is not a domain name", c.Domain)
	}
	if c.Secret == "" {
		return c, errors.New("component: Config.Secret is required")
	}
	if c.PingTo == "" {
		i := strings.IndexByte(c.Domain, '.')
		if i < 0 {
			return c, fmt.Errorf("component: Config.PingTo is required when Domain %q has a single label", c.Domain)
		}
		c.PingTo = c.Domain[i+1:]
	}
	if c.MaxStanzaSize <= 0 {
		c.MaxStanzaSize = defaultMaxStanzaSize
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = defaultMaxDepth
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, defaultPingInterval)
	def(&c.PingTimeout, defaultPingTimeout)
	def(&c.DialTimeout, defaultDialTimeout)
	def(&c.MinBackoff, defaultMinBackoff)
	def(&c.MaxBackoff, defaultMaxBackoff)
	def(&c.AuthBackoff, defaultAuthBackoff)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.WriteQueue <= 0 {
		c.WriteQueue = defaultWriteQueue
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c, nil
}

// Direction of a stanza on the link, for Observer.
type Direction string

// Directions.
const (
	In  Direction = "in"
	Out Direction = "out"
)

// Observer receives link events for metrics. Methods must not block and
// must be safe for concurrent use.
type Observer interface {
	LinkUp(up bool)
	Reconnected()                      // called on every successful handshake after the first
	Stanza(dir Direction, kind string) // kind: "message", "presence", "iq"
	StreamError(condition string)      // a stream error received from the server
}

type nopObserver struct{}

func (nopObserver) LinkUp(bool)                  {}
func (nopObserver) Reconnected()                 {}
func (nopObserver) Stanza(Direction, string)     {}
func (nopObserver) StreamError(condition string) {}
