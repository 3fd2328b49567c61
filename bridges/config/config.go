// Package config loads and validates Jabbergate's YAML configuration: the
// XEP-0114 component link, the bridges (one component domain bound to one
// legacy network each), the store, the HTTP listener, access control,
// logging and the credential vault. configs/jabbergate.example.yaml
// documents every key.
//
// Beyond plain YAML:
//
//   - String values may reference the environment: ${VAR} is replaced by
//     the value of VAR (an error if VAR is unset), ${VAR:-default} by the
//     value of VAR or, when VAR is unset or empty, by default. "$$" is a
//     literal dollar; a "$" not followed by "{" or "$" is kept as is.
//     Expansion applies to values only, never to keys or comments.
//   - Keys ending in _file (bridges[].secret_file, store.redis.url_file,
//     bridges[].options.*_file) name a file whose content, minus trailing
//     newlines, becomes the value of the key without _file. vault.key_file
//     is the exception: it is a path handed to the caller, which creates the
//     key there when the file does not exist (see Vault).
//   - Relative paths are relative to the directory of the config file.
//
// Every problem is reported as an *Error naming the file, line, key path
// and problem; Load and Parse report all problems at once (errors.Join).
// Secrets never appear in error messages; Config.Redacted prints the
// effective configuration with secrets masked.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. After a successful Load or Parse
// every default is filled in (see the field comments).
type Config struct {
	XMPP    XMPP     `yaml:"xmpp"`
	Bridges []Bridge `yaml:"bridges"`
	Store   Store    `yaml:"store"`
	HTTP    HTTP     `yaml:"http"`
	Access  Access   `yaml:"access"`
	Log     Log      `yaml:"log"`
	Vault   Vault    `yaml:"vault"`
	Media   Media    `yaml:"media"`
	Cluster Cluster  `yaml:"cluster"`

	lines map[string]int // key path → line, for Line

	// What a LoadWith check needs of the config as read: the config
	// file's directory (Defaulted), the keys Load found problems at
	// (Reported), and that the defaults are not filled in yet.
	dir      string
	reported map[string]bool
	asRead   bool
}

// XMPP configures the XEP-0114 component link to the XMPP server.
type XMPP struct {
	// Server is the server's component listener, host:port. Required
	// unless every bridge sets its own server.
	Server string `yaml:"server"`
	// MaxStanzaSize is the largest stanza read or written on the link.
	// Default 256KiB; at least 10000 bytes (RFC 6120 §13.12).
	MaxStanzaSize ByteSize `yaml:"max_stanza_size"`
	// MaxElementDepth bounds element nesting in a stanza read from the
	// server (the stanza itself is depth 1); a deeper stanza is refused to
	// its sender with policy-violation, the link stays up. 0 selects the
	// default, 32; at least 8.
	MaxElementDepth int `yaml:"max_element_depth"`
	// PingInterval is how often an idle link is checked with an XEP-0199
	// ping. Default 30s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PingTimeout is how long a ping may go unanswered before the link is
	// considered dead and reconnected. Default 30s.
	PingTimeout time.Duration `yaml:"ping_timeout"`
}

// Bridge binds one component domain to one legacy network.
// DefaultInboxLimit is bridges[].inbox_limit when not set.
const DefaultInboxLimit = 10000

type Bridge struct {
	// Network is the legacy network: "echo", "telegram", "email" or "sms".
	Network string `yaml:"network"`
	// Domain is the component domain, lowercased; unique across bridges.
	Domain string `yaml:"domain"`
	// Secret is the XEP-0114 shared secret. Required unless SecretFile is
	// given, in which case it holds the file's content.
	Secret string `yaml:"secret"`
	// SecretFile is the resolved path of the file the secret was read from.
	SecretFile string `yaml:"secret_file"`
	// Server overrides XMPP.Server for this bridge; after Load it is always
	// set (defaulting to XMPP.Server).
	Server string `yaml:"server"`
	// Name is the display name (disco identity); "" lets the network choose.
	Name string `yaml:"name"`
	// MultiLink says the XMPP server accepts several component links for
	// this domain (ejabberd), so every instance of a cluster connects.
	// False (default; Prosody, Openfire): one instance holds the link,
	// the others are standby. Only used when Cluster.Enabled.
	MultiLink bool `yaml:"multi_link"`
	// InboxLimit is how many legacy events one user may have waiting for
	// delivery to XMPP (the XMPP server not reading, the link down) before
	// the bridge refuses new ones with a retryable error, so the legacy
	// side keeps them: back-pressure instead of an ever-growing inbox.
	// 0 selects the default (10000); negative: no limit.
	InboxLimit int `yaml:"inbox_limit"`
	// Options are handed to the network's factory unchanged, except that
	// a key "x_file" is replaced by "x" holding the content of that file.
	Options map[string]string `yaml:"options"`

	// secretOptions marks options read from a *_file, for Redacted and
	// OptionKey.
	secretOptions map[string]bool
	// unreadOptions marks options whose *_file could not be read (an
	// error of Load): their value is a stand-in (OptionUnread).
	unreadOptions map[string]bool
}

// Store selects where state is kept.
type Store struct {
	// Backend is "bolt" (default), "pebble" or "redis".
	Backend string `yaml:"backend"`
	// Path is the bolt database file, default "jabbergate.db", or the
	// pebble database directory, default "jabbergate.pebble"; after Load
	// it is absolute or relative to the working directory (a relative path
	// in the file is resolved against the config file's directory).
	Path  string `yaml:"path"`
	Redis Redis  `yaml:"redis"`
}

// Redis configures the Redis store.
type Redis struct {
	// URL is a redis://, rediss:// or unix:// URL, or a comma-separated
	// list of them for Cluster. Required when the backend is redis; when
	// URLFile is given it holds the file's content.
	URL string `yaml:"url"`
	// URLFile is the resolved path of the file the URL was read from.
	URLFile string `yaml:"url_file"`
	// Prefix namespaces every key, default "jg".
	Prefix string `yaml:"prefix"`
}

// HTTP configures the listener for /metrics, /healthz, /readyz, webhooks
// and media.
type HTTP struct {
	// Listen is host:port, default "127.0.0.1:9470". The value "off" in the
	// file disables the listener; Listen is then "".
	Listen string `yaml:"listen"`
	// PProf serves Go's profiler (net/http/pprof) under /debug/pprof/ on
	// this listener, for diagnosing CPU and memory use. Off by default:
	// turn it on only on a listener that is not reachable from outside.
	PProf bool `yaml:"pprof"`
}

// Access says who may use the gateway.
type Access struct {
	// AllowedDomains are the user domains allowed to register, lowercased.
	// Required and non-empty: "*" allows every domain of the federation.
	AllowedDomains []string `yaml:"allowed_domains"`
	// Admins are bare JIDs (lowercased) allowed to run admin commands.
	Admins []string `yaml:"admins"`
	// RateLimit bounds the stanzas one user sends to a bridge.
	RateLimit RateLimit `yaml:"rate_limit"`
}

// RateLimit is a token bucket per user (bare JID) on inbound stanzas; past
// it messages and requests get a resource-constraint error (type wait).
// Zero values select the defaults (bridges.DefaultRateLimit and
// DefaultRateBurst: 20 per second, bursts of 200).
type RateLimit struct {
	// PerSecond is the sustained rate; negative disables the limit.
	PerSecond float64 `yaml:"per_second"`
	// Burst is how many stanzas may arrive at once.
	Burst int `yaml:"burst"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is text (default) or json.
	Format string `yaml:"format"`
}

// Vault configures the key that seals legacy credentials at rest.
//
// After Load exactly one of Key and KeyFile is set. With Key, use it
// (base64 of 32 bytes, already checked). With KeyFile, read the key from that
// file; `jabbergate run` creates a missing one with a new random key (mode
// 0600, vault.CreateKey) in its existing directory, and only while the
// store holds no registered account. Without key and key_file in the file, KeyFile
// defaults to "jabbergate.key" next to the bolt or pebble store. The redis
// backend requires key or key_file, because every instance must share one
// key.
type Vault struct {
	// Key is the base64 encoding of a 32-byte key.
	Key string `yaml:"key"`
	// KeyFile is the resolved path of the key file.
	KeyFile string `yaml:"key_file"`
	// OldKeys are earlier keys (base64), kept so values sealed with them
	// still open after a rotation (jabbergate rotate-key). After Load it
	// also holds the content of every OldKeyFiles file, checked.
	OldKeys []string `yaml:"old_keys"`
	// OldKeyFiles are the resolved paths of files holding earlier keys.
	OldKeyFiles []string `yaml:"old_key_files"`
}

// Media configures attachments: files from legacy contacts are stored in
// Dir and served by the HTTP listener under signed, expiring /media/ URLs;
// files XMPP users send (HTTP upload URLs) are downloaded and handed to the
// legacy network.
//
// BaseURL is required for inbound files: without it a file from a legacy
// contact reaches the user as a text note naming it. Outbound files work
// without it. After Load, Key holds the URL signing key when key or
// key_file was given; when it is empty the caller derives one from the
// vault key.
type Media struct {
	// Dir holds the stored files, default "media" next to the bolt or pebble store.
	Dir string `yaml:"dir"`
	// BaseURL is the public URL prefix of the HTTP listener as users'
	// clients reach it (https://gw.example.org, usually through a reverse
	// proxy); files are served at BaseURL/media/…. No trailing slash
	// needed. Requires the HTTP listener.
	BaseURL string `yaml:"base_url"`
	// MaxSize is the largest file stored or downloaded, default 20MiB.
	MaxSize ByteSize `yaml:"max_size"`
	// TTL is how long a stored file and its URL stay valid, default 168h.
	TTL time.Duration `yaml:"ttl"`
	// Key is the URL signing secret (at least 16 bytes). When KeyFile is
	// given it holds the file's content.
	Key string `yaml:"key"`
	// KeyFile is the resolved path of the file the key was read from.
	KeyFile string `yaml:"key_file"`
	// AllowPrivateFetch lets the gateway download files from loopback and
	// private addresses. Default false: a user could otherwise make the
	// gateway fetch from services on its own network.
	AllowPrivateFetch bool `yaml:"allow_private_fetch"`
	// FetchTimeout bounds one download, default 1m.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

// String shows the media settings without the key.
func (m Media) String() string {
	k := ""
	if m.Key != "" {
		k = " key:" + redacted
	}
	return fmt.Sprintf("{dir:%s base_url:%s max_size:%d ttl:%s%s}", m.Dir, m.BaseURL, m.MaxSize, m.TTL, k)
}

// GoString is String, for %#v: Media may hold the key.
func (m Media) GoString() string { return m.String() }

// Defaults.
const (
	DefaultMaxStanzaSize     ByteSize      = 256 * KiB
	DefaultPingInterval      time.Duration = 30 * time.Second
	DefaultPingTimeout       time.Duration = 30 * time.Second
	DefaultStoreBackend                    = "bolt"
	DefaultStorePath                       = "jabbergate.db"
	DefaultPebbleStorePath                 = "jabbergate.pebble"
	DefaultRedisPrefix                     = "jg"
	DefaultHTTPListen                      = "127.0.0.1:9470"
	DefaultLogLevel                        = "info"
	DefaultLogFormat                       = "text"
	DefaultKeyFileName                     = "jabbergate.key"
	DefaultMediaDirName                    = "media"
	DefaultMediaMaxSize      ByteSize      = 20 * MiB
	DefaultMediaTTL          time.Duration = 7 * 24 * time.Hour
	DefaultMediaFetchTimeout time.Duration = time.Minute
	DefaultLeaseTTL          time.Duration = 15 * time.Second // cluster.lease_ttl
	DefaultMaxElementDepth                 = 32               // xmpp.max_element_depth (component's default too)
	DefaultRatePerSecond     float64       = 20               // access.rate_limit.per_second (bridges.DefaultRateLimit)
	DefaultRateBurst                       = 200              // access.rate_limit.burst (bridges.DefaultRateBurst)
)

// Load reads, expands and validates the file at path. Relative paths in the
// file are resolved against the file's directory. On failure the error is
// an *Error or several joined with errors.Join (see Errors).
func Load(path string) (*Config, error) { return LoadWith(path, nil) }

// LoadWith is Load that also runs check, which finds the problems only
// the caller can (say, the options each bridge's network refuses), on the
// config as read, before defaults, even when Load finds problems of its
// own, so that every problem is reported at once. check returns *Error
// values (joined with errors.Join); one about a key Load already reported
// is dropped. When Load finds problems, LoadWith returns nil and them with
// check's, in line order. Otherwise it returns the config, with defaults,
// and check's error, which the caller reports with its other checks'.
// check must not report an option for which OptionUnread is true: its
// value is a stand-in.
func LoadWith(path string, check func(*Config) error) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{File: path, Problem: err.Error()}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &Error{File: path, Problem: err.Error()}
	}
	return parseWith(path, dir, data, check)
}

// OptionUnread reports whether option name of bridges[i] came from a
// *_file that could not be read (Load reports it): its value is a
// stand-in that says nothing about the option.
func (c *Config) OptionUnread(i int, name string) bool {
	return i >= 0 && i < len(c.Bridges) && c.Bridges[i].unreadOptions[name]
}

// Parse is Load on data already read; name is the file name used in error
// messages, and relative paths are resolved against filepath.Dir(name).
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, filepath.Dir(name), data)
}

func parse(name, dir string, data []byte) (*Config, error) {
	return parseWith(name, dir, data, nil)
}

func parseWith(name, dir string, data []byte, check func(*Config) error) (*Config, error) {
	d := &decoder{file: name, dir: dir, lines: map[string]int{}, lookupEnv: os.LookupEnv}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(extra.Line, "", "more than one YAML document; a config file holds exactly one")
	} else if err != io.EOF {
		return nil, syntaxError(name, err)
	}
	c := &Config{}
	d.decodeDocument(&doc, c)
	d.validate(c)
	var checkErr error
	if check != nil {
		c.lines = d.lines
		reported := map[string]bool{}
		for _, e := range d.errs {
			reported[e.Key] = true
		}
		c.dir, c.reported, c.asRead = dir, reported, true
		err := check(c)
		c.reported, c.asRead = nil, false
		ces := Errors(err)
		if err != nil && ces == nil {
			ces = []*Error{{File: name, Problem: err.Error()}}
		}
		var kept []error
		for _, e := range ces {
			switch {
			case e.Key != "" && reported[e.Key]:
			case len(d.errs) > 0:
				d.errs = append(d.errs, e) // reported with Load's own, in line order
			default:
				kept = append(kept, e)
			}
		}
		checkErr = errors.Join(kept...)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	d.applyDefaults(c)
	c.lines = d.lines
	return c, checkErr
}

// Defaulted returns the config as Load returns it: with the defaults
// filled in and relative paths resolved against the config file's
// directory. A LoadWith check sees the config as read, before defaults;
// it calls Defaulted for the paths and defaults a check needs (store.path,
// vault.key_file, media.dir). The result is a copy (c is not changed);
// values at keys Load reported (Reported) are whatever could be read. On
// a config Load returned it returns c.
func (c *Config) Defaulted() *Config {
	if !c.asRead {
		return c
	}
	cp := *c
	cp.Bridges = slices.Clone(c.Bridges)
	cp.asRead = false
	(&decoder{dir: c.dir}).applyDefaults(&cp)
	return &cp
}

// Reported reports whether Load found a problem at key, at a key under
// it or at a key it is under ("store" and "store.path.x" for
// "store.path"): a LoadWith check leaves out what needs a value Load
// refused, whose stand-in would mislead. Load has reported the problem.
// It is false on a config Load returned, which has no problems.
func (c *Config) Reported(key string) bool {
	for r := range c.reported {
		if r == "" {
			continue
		}
		if under(key, r) || under(r, key) {
			return true
		}
	}
	return false
}

// under reports whether key is path or a key under it.
func under(key, path string) bool {
	for ; key != ""; key = parentPath(key) {
		if key == path {
			return true
		}
	}
	return false
}

// Line returns the line in the config file of key, a key path such as
// "bridges[0].options" as used in Error, or of its nearest ancestor that
// appears in the file; 0 if none does. The caller can use it to report
// problems found later (say, an adapter rejecting its options) as an
// *Error with a line.
func (c *Config) Line(key string) int { return lineOf(c.lines, key) }

// OptionKey returns the key path of option name of bridges[i] as written
// in the file, for an *Error about an option the network refused:
// "bridges[i].options.name", or "bridges[i].options.name_file" when the
// value was read from that file (the network sees it as name). Line gives
// its line (that of the options block or the bridge when the option is
// not in the file).
func (c *Config) OptionKey(i int, name string) string {
	k := fmt.Sprintf("bridges[%d].options.%s", i, name)
	if i >= 0 && i < len(c.Bridges) && c.Bridges[i].secretOptions[name] {
		k += "_file"
	}
	return k
}

// String returns Redacted, so a Config printed with %v shows no secret.
func (c *Config) String() string { return c.Redacted() }

// GoString is String, for %#v.
func (c *Config) GoString() string { return c.Redacted() }

// String shows a bridge without its secret or options.
func (b Bridge) String() string {
	return fmt.Sprintf("{network:%s domain:%s server:%s}", b.Network, b.Domain, b.Server)
}

// GoString is String, for %#v: a Bridge holds a secret.
func (b Bridge) GoString() string { return b.String() }

// String shows the Redis settings with any password in the URL masked.
func (r Redis) String() string {
	return fmt.Sprintf("{url:%s prefix:%s}", redactURL(r.URL), r.Prefix)
}

// GoString is String, for %#v: the URL may carry a password.
func (r Redis) GoString() string { return r.String() }

// String shows the key file, or that a key is set, never the key.
func (v Vault) String() string {
	if v.Key != "" {
		return "{key:" + redacted + "}"
	}
	return "{key_file:" + v.KeyFile + "}"
}

// GoString is String, for %#v: a Vault may hold the key.
func (v Vault) GoString() string { return v.String() }

// Cluster runs several gateway processes on one Redis store
// (docs/scale-out.md): each account runs on the instance holding its
// lease, and accounts move when an instance dies.
type Cluster struct {
	// Enabled turns the clustered mode on; it requires store.backend
	// redis. Default false: one process.
	Enabled bool `yaml:"enabled"`
	// Instance names this process among the instances; unique. Default:
	// host name, process id and a random suffix.
	Instance string `yaml:"instance"`
	// LeaseTTL is the lease period, default 15s when Enabled, at least 1s: a dead
	// instance's accounts move to the others within it (plus a quarter
	// of it for the next check).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}
