package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ParseURL turns a store URL into options for goredis.NewUniversalClient.
// It is a pure function: it does no I/O.
//
// One server (parsed by go-redis's own ParseURL, so its query options such
// as dial_timeout, read_timeout, pool_size and db apply):
//
//	redis://[user:password@]host[:6379][/db][?option=value...]
//	rediss://...                             the same over TLS
//	unix://[user:password@]/path/redis.sock[?db=N&...]
//
// Sentinel (the failover client; the user info authenticates to the data
// nodes, sentinel_username / sentinel_password to the sentinels):
//
//	redis+sentinel://[user:password@]host1[:26379][,host2[:port]...]/master[/db][?option=value...]
//	rediss+sentinel://...                    the same over TLS
//
// Cluster (one address is enough; the client discovers the rest):
//
//	redis+cluster://[user:password@]host1[:6379][,host2[:port]...][?option=value...]
//	rediss+cluster://...                     the same over TLS
//
// The Sentinel and Cluster forms accept these options: dial_timeout,
// read_timeout, write_timeout (a Go duration, or a whole number of seconds),
// pool_size, max_retries, client_name, protocol (2 or 3); Sentinel also db,
// sentinel_username and sentinel_password. An unknown option is an error.
// The protocol is RESP2 unless protocol=3 is given (Open).
// IPv6 hosts are written in brackets: [::1]:26379.
func ParseURL(raw string) (*goredis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("store: redis URL %q: missing scheme", redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		o, err := goredis.ParseURL(raw)
		if err != nil {
			// A *url.Error repeats the URL, password and all.
			if ue := (*url.Error)(nil); errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("store: redis URL %q: %w", redact(raw), err)
		}
		return fromOptions(o), nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := parseMulti(strings.ToLower(scheme), rest, 26379)
		if err != nil {
			return nil, fmt.Errorf("store: redis URL %q: %w", redact(raw), err)
		}
		return o, nil
	case "redis+cluster", "rediss+cluster":
		o, err := parseMulti(strings.ToLower(scheme), rest, 6379)
		if err != nil {
			return nil, fmt.Errorf("store: redis URL %q: %w", redact(raw), err)
		}
		return o, nil
	default:
		return nil, fmt.Errorf("store: redis URL %q: unknown scheme %q (want redis, rediss, unix, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", redact(raw), scheme)
	}
}

// redact hides the password of a URL for error messages.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	auth, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth, tail = rest[:i], rest[i:]
	}
	at := strings.LastIndexByte(auth, '@')
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(auth[:at], ":")
	if !hasPass {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + auth[at:] + tail
}

// fromOptions copies the fields go-redis's ParseURL can set.
func fromOptions(o *goredis.Options) *goredis.UniversalOptions {
	return &goredis.UniversalOptions{
		Addrs:                 []string{o.Addr}, // a Unix socket path starts with '/', which go-redis recognises
		ClientName:            o.ClientName,
		DB:                    o.DB,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		DialTimeout:           o.DialTimeout,
		DialerRetries:         o.DialerRetries,
		DialerRetryTimeout:    o.DialerRetryTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		PoolFIFO:              o.PoolFIFO,
		PoolSize:              o.PoolSize,
		MaxConcurrentDials:    o.MaxConcurrentDials,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
		ConnMaxLifetimeJitter: o.ConnMaxLifetimeJitter,
		ReadBufferSize:        o.ReadBufferSize,
		WriteBufferSize:       o.WriteBufferSize,
		TLSConfig:             o.TLSConfig,
		DisableIdentity:       o.DisableIdentity,
		IdentitySuffix:        o.IdentitySuffix,
	}
}

// parseMulti parses the part after "scheme://" of a Sentinel or Cluster URL.
func parseMulti(scheme, rest string, defaultPort int) (*goredis.UniversalOptions, error) {
	sentinel := strings.HasSuffix(scheme, "+sentinel")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	auth, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		auth, tail = rest[:i], rest[i:]
	}
	o := &goredis.UniversalOptions{}
	hosts := auth
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		hosts = auth[at+1:]
		// Let net/url decode the user info (percent-escapes).
		u, err := url.Parse("x://" + auth[:at] + "@h")
		if err != nil {
			return nil, fmt.Errorf("bad user info")
		}
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			return nil, err
		}
		o.Addrs = append(o.Addrs, addr)
	}
	u, err := url.Parse("x://h" + tail)
	if err != nil {
		return nil, err
	}
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(path) == 1 && path[0] == "" {
		path = nil
	}
	if sentinel {
		switch len(path) {
		case 2:
			if o.DB, err = strconv.Atoi(path[1]); err != nil || o.DB < 0 {
				return nil, fmt.Errorf("bad database number %q", path[1])
			}
			fallthrough
		case 1:
			o.MasterName = path[0]
		case 0:
			return nil, fmt.Errorf("missing master name: want %s://hosts/master", scheme)
		default:
			return nil, fmt.Errorf("bad path %q: want /master or /master/db", u.Path)
		}
		if o.MasterName == "" {
			return nil, fmt.Errorf("missing master name: want %s://hosts/master", scheme)
		}
	} else {
		if len(path) > 0 {
			return nil, fmt.Errorf("a cluster URL has no path (Redis Cluster has only database 0), got %q", u.Path)
		}
		// With one seed address NewUniversalClient would build a
		// single-node client.
		o.IsClusterMode = true
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "dial_timeout":
			o.DialTimeout, err = parseDuration(v)
		case "read_timeout":
			o.ReadTimeout, err = parseDuration(v)
		case "write_timeout":
			o.WriteTimeout, err = parseDuration(v)
		case "pool_size":
			o.PoolSize, err = parseInt(v)
		case "max_retries":
			o.MaxRetries, err = strconv.Atoi(v)
		case "client_name":
			o.ClientName = v
		case "protocol":
			o.Protocol, err = strconv.Atoi(v)
			if err == nil && o.Protocol != 2 && o.Protocol != 3 {
				err = fmt.Errorf("want 2 or 3")
			}
		case "db", "sentinel_username", "sentinel_password":
			if !sentinel {
				return nil, fmt.Errorf("option %q is only for Sentinel URLs", k)
			}
			switch k {
			case "db":
				o.DB, err = parseInt(v)
			case "sentinel_username":
				o.SentinelUsername = v
			case "sentinel_password":
				o.SentinelPassword = v
			}
		default:
			return nil, fmt.Errorf("unknown option %q", k)
		}
		if err != nil {
			return nil, fmt.Errorf("option %s=%q: %v", k, v, err)
		}
	}
	if strings.HasPrefix(scheme, "rediss") {
		host, _, _ := net.SplitHostPort(o.Addrs[0])
		o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// hostPort validates one host[:port] and adds the default port.
func hostPort(h string, defaultPort int) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port (or a bare IPv6 address, which needs brackets).
		if strings.Count(h, ":") > 1 && !strings.HasPrefix(h, "[") {
			return "", fmt.Errorf("host %q: write IPv6 addresses in brackets", h)
		}
		host, port = h, strconv.Itoa(defaultPort)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		} else if strings.Contains(h, ":") {
			return "", fmt.Errorf("bad host %q", h)
		}
		if strings.ContainsAny(host, "[]/@") {
			return "", fmt.Errorf("bad host %q", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("empty host in %q", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port in %q", h)
	}
	return net.JoinHostPort(host, port), nil
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < 0 {
		err = fmt.Errorf("negative")
	}
	return n, err
}

// parseDuration reads a Go duration or, like go-redis, a whole number of
// seconds.
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}
