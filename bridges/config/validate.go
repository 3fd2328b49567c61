package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	redisstore "github.com/jabbergate/jabbergate/bridges/store/redis"
)

// Allowed values.
var (
	networks      = []string{"echo", "email", "sms", "telegram"}
	storeBackends = []string{"bolt", "pebble", "redis"}
	logLevels     = []string{"debug", "info", "warn", "error"}
	logFormats    = []string{"text", "json"}
	redisSchemes  = []string{"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}
)

const keyHint = "create one with: openssl rand -base64 32"

// RegisterNetwork adds name to the networks a config may name. It is for
// networks linked only into test builds (the fault-injection network of
// legacy/legacytest/faultnet); call it from an init function, not
// concurrently with Parse.
func RegisterNetwork(name string) {
	if !slices.Contains(networks, name) {
		networks = append(networks, name)
	}
}

func allowed(vals []string) string { return "allowed: " + strings.Join(vals, ", ") }

// validate checks c, reads *_file keys and normalizes case, recording every
// problem. It applies no defaults.
func (d *decoder) validate(c *Config) {
	d.validating = true
	d.validateXMPP(c)
	d.validateBridges(c)
	d.validateStore(c)
	d.validateHTTP(c)
	d.validateAccess(c)
	d.validateLog(c)
	d.validateVault(c)
	d.validateRateLimit(c)
	d.validateMedia(c)
	d.validateCluster(c)
}

func (d *decoder) validateCluster(c *Config) {
	cl := &c.Cluster
	cl.Instance = strings.TrimSpace(cl.Instance)
	if strings.ContainsAny(cl.Instance, " \t|") {
		d.errorf(d.line("cluster.instance"), "cluster.instance", "must not contain white space or '|'")
	}
	if cl.LeaseTTL != 0 && cl.LeaseTTL < time.Second {
		d.errorf(d.line("cluster.lease_ttl"), "cluster.lease_ttl", "must be at least 1s (default 15s)")
	}
	if cl.Enabled && c.Store.Backend != "redis" {
		d.errorf(d.line("cluster.enabled"), "cluster.enabled", "needs store.backend: redis (a bolt or pebble store belongs to one process)")
	}
}

func (d *decoder) validateMedia(c *Config) {
	m := &c.Media
	m.BaseURL = strings.TrimRight(strings.TrimSpace(m.BaseURL), "/")
	if m.BaseURL != "" {
		u, err := url.Parse(m.BaseURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			d.errorf(d.line("media.base_url"), "media.base_url", "invalid URL %q (want the public http(s) URL of the HTTP listener, e.g. https://gw.example.org)", m.BaseURL)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			d.errorf(d.line("media.base_url"), "media.base_url", "must not have user info, a query or a fragment")
		case strings.EqualFold(strings.TrimSpace(c.HTTP.Listen), "off"):
			d.errorf(d.line("media.base_url"), "media.base_url", "files are served by the HTTP listener, but http.listen is off")
		}
	}
	// An explicit 0 is refused, not taken as the default.
	for _, k := range []struct {
		key      string
		bad      bool
		def      string
		negative bool
	}{
		{"media.ttl", m.TTL <= 0, DefaultMediaTTL.String(), m.TTL < 0},
		{"media.max_size", m.MaxSize <= 0, DefaultMediaMaxSize.String(), m.MaxSize < 0},
		{"media.fetch_timeout", m.FetchTimeout <= 0, DefaultMediaFetchTimeout.String(), m.FetchTimeout < 0},
	} {
		if _, given := d.lines[k.key]; k.bad && (k.negative || given) {
			d.errorf(d.line(k.key), k.key, "must be positive (leave it out for the default, %s)", k.def)
		}
	}
	switch {
	case m.Key != "" && m.KeyFile != "":
		d.errorf(d.line("media.key_file"), "media.key_file", "give key or key_file, not both")
	case m.KeyFile != "":
		m.KeyFile = d.path(m.KeyFile)
		if s, ok := d.readFile("media.key_file", m.KeyFile); ok {
			if len(s) < 16 {
				d.errorf(d.line("media.key_file"), "media.key_file", "file %q: the key must be at least 16 bytes (%s)", m.KeyFile, keyHint)
			} else {
				m.Key = s
			}
		}
	case m.Key != "" && len(m.Key) < 16:
		d.errorf(d.line("media.key"), "media.key", "must be at least 16 bytes (%s)", keyHint)
	}
}

func (d *decoder) required(key, hint string) {
	if hint != "" {
		hint = ": " + hint
	}
	d.errorf(d.line(key), key, "required%s", hint)
}

func (d *decoder) validateXMPP(c *Config) {
	x := &c.XMPP
	everyBridgeHasServer := len(c.Bridges) > 0
	for _, b := range c.Bridges {
		if b.Server == "" {
			everyBridgeHasServer = false
		}
	}
	switch {
	case x.Server != "":
		if p := checkHostPort(x.Server, true); p != "" {
			d.errorf(d.line("xmpp.server"), "xmpp.server", "%s", p)
		}
	case !everyBridgeHasServer:
		d.required("xmpp.server", "the XMPP server's component listener, host:port")
	}
	// An explicit 0 is refused, not taken as the default.
	if _, given := d.lines["xmpp.max_stanza_size"]; x.MaxStanzaSize < 10000 && (x.MaxStanzaSize != 0 || given) {
		d.errorf(d.line("xmpp.max_stanza_size"), "xmpp.max_stanza_size", "must be at least 10000 bytes (RFC 6120 §13.12; leave it out for the default, %s)", DefaultMaxStanzaSize)
	}
	if _, given := d.lines["xmpp.max_element_depth"]; x.MaxElementDepth < 8 && (x.MaxElementDepth != 0 || given) {
		d.errorf(d.line("xmpp.max_element_depth"), "xmpp.max_element_depth", "must be at least 8 (leave it out for the default, %d)", DefaultMaxElementDepth)
	}
	for _, k := range []struct {
		key string
		v   time.Duration
		def time.Duration
	}{{"xmpp.ping_interval", x.PingInterval, DefaultPingInterval}, {"xmpp.ping_timeout", x.PingTimeout, DefaultPingTimeout}} {
		_, given := d.lines[k.key]
		if k.v < 0 || (k.v == 0 && given) {
			d.errorf(d.line(k.key), k.key, "must be positive (leave it out for the default, %s)", k.def)
		}
	}
}

func (d *decoder) validateBridges(c *Config) {
	if len(c.Bridges) == 0 {
		d.required("bridges", "at least one bridge")
		return
	}
	domains := map[string]int{} // domain → bridge index
	for i := range c.Bridges {
		b := &c.Bridges[i]
		p := fmt.Sprintf("bridges[%d]", i)

		switch {
		case b.Network == "":
			d.required(p+".network", allowed(networks))
		case !slices.Contains(networks, b.Network):
			d.errorf(d.line(p+".network"), p+".network", "unknown network %q (%s)", b.Network, allowed(networks))
		}

		b.Domain = strings.ToLower(strings.TrimSpace(b.Domain))
		switch {
		case b.Domain == "":
			d.required(p+".domain", "the component domain, e.g. telegram.example.org")
		case checkDomain(b.Domain) != "":
			d.errorf(d.line(p+".domain"), p+".domain", "invalid domain %q: %s", b.Domain, checkDomain(b.Domain))
		default:
			if j, dup := domains[b.Domain]; dup {
				d.errorf(d.line(p+".domain"), p+".domain", "duplicate domain %q (also bridges[%d] at line %d)",
					b.Domain, j, d.line(fmt.Sprintf("bridges[%d].domain", j)))
			} else {
				domains[b.Domain] = i
			}
		}

		switch {
		case b.Secret != "" && b.SecretFile != "":
			d.errorf(d.line(p+".secret_file"), p+".secret_file", "give secret or secret_file, not both")
		case b.SecretFile != "":
			b.SecretFile = d.path(b.SecretFile)
			if s, ok := d.readFile(p+".secret_file", b.SecretFile); ok {
				b.Secret = s
			}
		case b.Secret == "":
			d.required(p+".secret", "the component's shared secret (or give secret_file)")
		}

		if _, given := d.lines[p+".inbox_limit"]; b.InboxLimit < -1 || (b.InboxLimit == 0 && given) {
			d.errorf(d.line(p+".inbox_limit"), p+".inbox_limit", "want a positive number of events, or -1 for no limit (leave it out for the default, %d)", DefaultInboxLimit)
		}
		if b.InboxLimit == 0 {
			b.InboxLimit = DefaultInboxLimit
		}

		if b.Server != "" {
			if prob := checkHostPort(b.Server, true); prob != "" {
				d.errorf(d.line(p+".server"), p+".server", "%s", prob)
			}
		}

		d.options(b, p+".options")
	}
}

// options replaces every "x_file" option by "x" holding the file's content.
func (d *decoder) options(b *Bridge, p string) {
	keys := make([]string, 0, len(b.Options))
	for k := range b.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		base, ok := strings.CutSuffix(k, "_file")
		if !ok {
			continue
		}
		kp := p + "." + k
		switch _, both := b.Options[base]; {
		case base == "":
			d.errorf(d.line(kp), kp, "option name missing before \"_file\"")
		case both:
			d.errorf(d.line(kp), kp, "give %s or %s, not both", base, k)
		case b.Options[k] == "":
			d.required(kp, "a file name")
		default:
			s, ok := d.readFile(kp, d.path(b.Options[k]))
			if !ok {
				// Still checked by the network with the others
				// (LoadWith), with a stand-in value it is not asked
				// about (Unread).
				s = "unread"
				if b.unreadOptions == nil {
					b.unreadOptions = map[string]bool{}
				}
				b.unreadOptions[base] = true
			}
			delete(b.Options, k)
			b.Options[base] = s
			if b.secretOptions == nil {
				b.secretOptions = map[string]bool{}
			}
			b.secretOptions[base] = true
		}
	}
}

func (d *decoder) validateStore(c *Config) {
	s := &c.Store
	s.Backend = strings.ToLower(strings.TrimSpace(s.Backend))
	if s.Backend != "" && !slices.Contains(storeBackends, s.Backend) {
		d.errorf(d.line("store.backend"), "store.backend", "invalid value %q (%s)", s.Backend, allowed(storeBackends))
	}
	if s.Backend == "pebble" {
		d.checkPebblePath(s.Path)
	}
	r := &s.Redis
	if s.Backend == "redis" {
		switch {
		case r.URL != "" && r.URLFile != "":
			d.errorf(d.line("store.redis.url_file"), "store.redis.url_file", "give url or url_file, not both")
		case r.URLFile != "":
			r.URLFile = d.path(r.URLFile)
			if u, ok := d.readFile("store.redis.url_file", r.URLFile); ok {
				r.URL = strings.TrimSpace(u)
				if prob := checkRedisURL(r.URL, false); prob != "" {
					d.errorf(d.line("store.redis.url_file"), "store.redis.url_file", "file %q: %s", r.URLFile, prob)
				}
			}
		case r.URL == "":
			d.required("store.redis.url", "when store.backend is redis (or give url_file)")
		default:
			if prob := checkRedisURL(r.URL, true); prob != "" {
				d.errorf(d.line("store.redis.url"), "store.redis.url", "%s", prob)
			}
		}
	}
	if strings.ContainsAny(r.Prefix, "{} \t\r\n") {
		d.errorf(d.line("store.redis.prefix"), "store.redis.prefix", "must not contain braces or white space (keys are hash-tagged per account)")
	}
}

// checkPebblePath reports a store.path (or its default) that names
// something other than a directory: the pebble store is a directory, and a
// file there is most likely a bolt store left by a change of backend.
func (d *decoder) checkPebblePath(p string) {
	if p == "" {
		p = DefaultPebbleStorePath
	}
	if prob := storePathProblem("pebble", d.path(p), false); prob != "" {
		d.errorf(d.line("store.path"), "store.path", "%s", prob)
	}
}

func (d *decoder) validateHTTP(c *Config) {
	l := strings.TrimSpace(c.HTTP.Listen)
	c.HTTP.Listen = l
	if l == "" || strings.EqualFold(l, "off") {
		return
	}
	if prob := checkHostPort(l, false); prob != "" {
		d.errorf(d.line("http.listen"), "http.listen", "%s (or \"off\")", prob)
	}
}

func (d *decoder) validateAccess(c *Config) {
	a := &c.Access
	if len(a.AllowedDomains) == 0 {
		d.required("access.allowed_domains", `the user domains allowed to register, or "*" for any domain`)
	}
	for i, dom := range a.AllowedDomains {
		dom = strings.ToLower(strings.TrimSpace(dom))
		a.AllowedDomains[i] = dom
		p := fmt.Sprintf("access.allowed_domains[%d]", i)
		if dom == "*" {
			continue
		}
		if dom == "" {
			d.errorf(d.line(p), p, `empty domain (write "*" for any domain)`)
		} else if prob := checkDomain(dom); prob != "" {
			d.errorf(d.line(p), p, "invalid domain %q: %s", dom, prob)
		}
	}
	for i, j := range a.Admins {
		j = strings.ToLower(strings.TrimSpace(j))
		a.Admins[i] = j
		p := fmt.Sprintf("access.admins[%d]", i)
		if prob := checkBareJID(j); prob != "" {
			d.errorf(d.line(p), p, "invalid bare JID %q: %s", j, prob)
		}
	}
}

func (d *decoder) validateLog(c *Config) {
	l := &c.Log
	l.Level = strings.ToLower(strings.TrimSpace(l.Level))
	if l.Level != "" && !slices.Contains(logLevels, l.Level) {
		d.errorf(d.line("log.level"), "log.level", "invalid value %q (%s)", l.Level, allowed(logLevels))
	}
	l.Format = strings.ToLower(strings.TrimSpace(l.Format))
	if l.Format != "" && !slices.Contains(logFormats, l.Format) {
		d.errorf(d.line("log.format"), "log.format", "invalid value %q (%s)", l.Format, allowed(logFormats))
	}
}

func (d *decoder) validateVault(c *Config) {
	v := &c.Vault
	v.Key = strings.TrimSpace(v.Key)
	switch {
	case v.Key != "" && v.KeyFile != "":
		d.errorf(d.line("vault.key_file"), "vault.key_file", "give key or key_file, not both")
	case v.Key != "":
		k, err := base64.StdEncoding.DecodeString(v.Key)
		switch {
		case err != nil:
			d.errorf(d.line("vault.key"), "vault.key", "not valid base64 (%s)", keyHint)
		case len(k) != 32:
			d.errorf(d.line("vault.key"), "vault.key", "must be 32 bytes, got %d (%s)", len(k), keyHint)
		}
	case v.KeyFile == "" && c.Store.Backend == "redis":
		line := d.line("vault")
		if line == 0 {
			line = d.line("store.backend") // where the need comes from
		}
		d.errorf(line, "vault.key", "required: with store.backend redis every instance must share one key: set vault.key or vault.key_file")
	}
	for i, k := range v.OldKeys {
		v.OldKeys[i] = strings.TrimSpace(k)
		if b, err := base64.StdEncoding.DecodeString(v.OldKeys[i]); err != nil || len(b) != 32 {
			p := fmt.Sprintf("vault.old_keys[%d]", i)
			d.errorf(d.line(p), p, "not the base64 of 32 bytes (%s)", keyHint)
		}
	}
	for i, f := range v.OldKeyFiles {
		p := fmt.Sprintf("vault.old_key_files[%d]", i)
		v.OldKeyFiles[i] = d.path(f)
		if s, ok := d.readFile(p, v.OldKeyFiles[i]); ok {
			s = strings.TrimSpace(s)
			if b, err := base64.StdEncoding.DecodeString(s); err != nil || len(b) != 32 {
				d.errorf(d.line(p), p, "file %q: not the base64 of 32 bytes (%s)", v.OldKeyFiles[i], keyHint)
			} else {
				v.OldKeys = append(v.OldKeys, s)
			}
		}
	}
}

func (d *decoder) validateRateLimit(c *Config) {
	if c.Access.RateLimit.Burst < 0 {
		d.errorf(d.line("access.rate_limit.burst"), "access.rate_limit.burst", "must not be negative")
	}
}

// applyDefaults fills in defaults and resolves relative paths; c is valid.
func (d *decoder) applyDefaults(c *Config) {
	x := &c.XMPP
	if x.MaxStanzaSize == 0 {
		x.MaxStanzaSize = DefaultMaxStanzaSize
	}
	if x.PingInterval == 0 {
		x.PingInterval = DefaultPingInterval
	}
	// Printed by check-config as what is in force, not as zeros.
	if x.MaxElementDepth == 0 {
		x.MaxElementDepth = DefaultMaxElementDepth
	}
	if rl := &c.Access.RateLimit; rl.PerSecond == 0 {
		rl.PerSecond = DefaultRatePerSecond
	}
	if rl := &c.Access.RateLimit; rl.Burst == 0 {
		rl.Burst = DefaultRateBurst
	}
	if x.PingTimeout == 0 {
		x.PingTimeout = DefaultPingTimeout
	}
	for i := range c.Bridges {
		if c.Bridges[i].Server == "" {
			c.Bridges[i].Server = x.Server
		}
	}
	s := &c.Store
	if s.Backend == "" {
		s.Backend = DefaultStoreBackend
	}
	if s.Path == "" {
		s.Path = DefaultStorePath
		if s.Backend == "pebble" {
			s.Path = DefaultPebbleStorePath
		}
	}
	s.Path = d.path(s.Path)
	if s.Redis.Prefix == "" {
		s.Redis.Prefix = DefaultRedisPrefix
	}
	switch {
	case c.HTTP.Listen == "":
		c.HTTP.Listen = DefaultHTTPListen
	case strings.EqualFold(c.HTTP.Listen, "off"):
		c.HTTP.Listen = ""
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	md := &c.Media
	if md.Dir == "" {
		md.Dir = filepath.Join(filepath.Dir(s.Path), DefaultMediaDirName)
	}
	md.Dir = d.path(md.Dir)
	if md.MaxSize == 0 {
		md.MaxSize = DefaultMediaMaxSize
	}
	if md.TTL == 0 {
		md.TTL = DefaultMediaTTL
	}
	if md.FetchTimeout == 0 {
		md.FetchTimeout = DefaultMediaFetchTimeout
	}
	if c.Cluster.LeaseTTL == 0 {
		c.Cluster.LeaseTTL = DefaultLeaseTTL
	}
	switch {
	case c.Vault.KeyFile != "":
		c.Vault.KeyFile = d.path(c.Vault.KeyFile)
	case c.Vault.Key == "":
		c.Vault.KeyFile = filepath.Join(filepath.Dir(s.Path), DefaultKeyFileName)
	}
}

// path resolves p against the config file's directory.
func (d *decoder) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

// readFile reads a secret file, without its trailing newlines. Problems
// name the file, never its content.
func (d *decoder) readFile(key, path string) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		d.errorf(d.line(key), key, "cannot read %q: %v", path, err)
		return "", false
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		d.errorf(d.line(key), key, "file %q is empty", path)
		return "", false
	}
	return s, true
}

// checkHostPort returns why s is not a host:port address, or "".
func checkHostPort(s string, needHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		msg := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			msg = ae.Err
		}
		return fmt.Sprintf("invalid address %q: %s (want host:port)", s, msg)
	}
	if needHost && host == "" {
		return fmt.Sprintf("invalid address %q: missing host (want host:port)", s)
	}
	if host != "" {
		if prob := checkHost(host); prob != "" {
			return fmt.Sprintf("invalid host %q in %q: %s", host, s, prob)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("invalid address %q: port must be a number from 1 to 65535", s)
	}
	return ""
}

// checkHost returns why host, from a host:port, is neither an IP literal
// nor a DNS name (RFC 1123; any case, a trailing dot allowed), or "".
func checkHost(host string) string {
	if net.ParseIP(host) != nil {
		return ""
	}
	prob := checkDomain(strings.ToLower(strings.TrimSuffix(host, ".")))
	if prob == "an IP address, not a domain name" {
		return "neither an IP address nor a domain name"
	}
	return prob
}

// checkDomain returns why s (lowercase) is not a DNS domain name, or "".
func checkDomain(s string) string {
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "label longer than 63 characters"
		}
		for _, r := range l {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
				return fmt.Sprintf("character %q not allowed (letters, digits, '-' and '.'; write internationalized names as xn--…)", r)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "a label starts or ends with '-'"
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "an IP address, not a domain name"
	}
	return ""
}

// checkBareJID returns why s (lowercase) is not a bare user JID, or "".
func checkBareJID(s string) string {
	if strings.Contains(s, "/") {
		return "has a resource; give a bare JID, user@domain"
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" {
		return "want user@domain"
	}
	if len(local) > 1023 || strings.ContainsAny(local, "\"&'/:<>@ \t\r\n") {
		return "invalid localpart"
	}
	if prob := checkDomain(domain); prob != "" {
		return "domain: " + prob
	}
	return ""
}

// checkRedisURL returns why u is not a Redis URL or comma-separated list of
// them, or "". It never quotes u, which may carry a password, and quotes an
// unknown scheme only if quoteScheme and the scheme is a plain word.
func checkRedisURL(u string, quoteScheme bool) string {
	want := "want redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
	scheme, rest, ok := strings.Cut(strings.TrimSpace(u), "://")
	if !ok {
		return "missing scheme (" + want + ")"
	}
	if !slices.Contains(redisSchemes, strings.ToLower(scheme)) {
		if quoteScheme && plainScheme(scheme) {
			return fmt.Sprintf("unknown scheme %q (%s)", scheme, want)
		}
		return "unknown scheme (" + want + ")"
	}
	if !strings.Contains(scheme, "+") && strings.Contains(rest, ",") {
		return "a list of addresses needs redis+cluster://host1:port,host2:port (Cluster) or redis+sentinel://host1:port,host2:port/master (Sentinel)"
	}
	// The store's own parser, so that what passes here opens at run
	// (port, escapes, options); its errors name the URL with the
	// password hidden, which the caller's key already says.
	if _, err := redisstore.ParseURL(strings.TrimSpace(u)); err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return err.Error()
	}
	return ""
}

func plainScheme(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
