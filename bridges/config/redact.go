package config

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

const redacted = "REDACTED"

// secretWords mark an adapter option as secret by its name.
var secretWords = []string{"secret", "token", "pass", "key", "hash", "auth", "credential", "cookie", "private", "session"}

func secretOption(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// Redacted returns c as YAML, for `jabbergate check-config`, with every
// secret replaced by "REDACTED": bridge secrets, the vault key, the password
// in Redis URLs, and adapter options read from a *_file or whose name looks
// secret (token, password, key, hash, …). Empty values are left out; a
// disabled HTTP listener shows as "off".
func (c *Config) Redacted() string {
	r := *c
	r.Bridges = make([]Bridge, len(c.Bridges))
	for i, b := range c.Bridges {
		if b.Secret != "" {
			b.Secret = redacted
		}
		if b.Options != nil {
			opts := maps.Clone(b.Options)
			for k := range opts {
				if b.secretOptions[k] || secretOption(k) {
					opts[k] = redacted
				}
			}
			b.Options = opts
		}
		r.Bridges[i] = b
	}
	r.Store.Redis.URL = redactURL(c.Store.Redis.URL)
	if r.Vault.Key != "" {
		r.Vault.Key = redacted
	}
	if len(c.Vault.OldKeys) > 0 {
		r.Vault.OldKeys = slices.Repeat([]string{redacted}, len(c.Vault.OldKeys))
	}
	if r.Media.Key != "" {
		r.Media.Key = redacted
	}
	if r.HTTP.Listen == "" {
		r.HTTP.Listen = "off"
	}
	r.Access.AllowedDomains = slices.Clone(c.Access.AllowedDomains)
	r.Access.Admins = slices.Clone(c.Access.Admins)

	var n yaml.Node
	if err := n.Encode(&r); err != nil {
		return "# cannot encode config: " + err.Error() + "\n"
	}
	prune(&n)
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return "# cannot encode config: " + err.Error() + "\n"
	}
	if err := enc.Close(); err != nil {
		return "# cannot encode config: " + err.Error() + "\n"
	}
	return b.String()
}

// prune drops mapping entries whose value is empty.
func prune(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.ShortTag() == "!!null" || (n.ShortTag() == "!!str" && n.Value == "")
	case yaml.SequenceNode:
		for _, c := range n.Content {
			prune(c)
		}
		return len(n.Content) == 0
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !prune(n.Content[i+1]) {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
		return len(n.Content) == 0
	case yaml.DocumentNode:
		for _, c := range n.Content {
			prune(c)
		}
	}
	return false
}

// redactURL masks the password (and secret-looking query parameters) of
// each URL in a comma-separated list; an entry it cannot parse but that
// may hold credentials is replaced whole.
func redactURL(list string) string {
	if list == "" {
		return ""
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if !strings.ContainsAny(p, "@?") {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = redacted
			continue
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), redacted)
			}
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				if secretOption(k) {
					q[k] = []string{redacted}
				}
			}
			u.RawQuery = q.Encode()
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
