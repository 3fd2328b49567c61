package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"
)

// File is a downloaded file.
type File struct {
	Name string // from Content-Disposition or the URL path, sanitised
	Type string // from Content-Type, or guessed from the name
	Data []byte
}

// FetchError is a download that failed for good: retrying will not help
// (bad URL, forbidden address, HTTP 4xx). Other Fetch errors (network
// errors, HTTP 5xx, timeouts) may pass.
type FetchError struct {
	// Reason is a human-readable explanation for the sender.
	Reason string
	// Status is the HTTP status, when the server answered.
	Status int
	// Forbidden marks a URL the gateway refuses to fetch (scheme,
	// private address).
	Forbidden bool
}

func (e *FetchError) Error() string { return "media: " + e.Reason }

// ErrPrivateAddress is wrapped when a URL resolves to a non-public address.
var ErrPrivateAddress = errors.New("address is not publicly routable")

// transient marks a failure worth retrying.
type transient struct{ err error }

func (t *transient) Error() string { return "media: " + t.err.Error() }
func (t *transient) Unwrap() error { return t.err }

func (s *Store) newClient() *http.Client {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	if !s.opts.AllowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%s: %w", address, ErrPrivateAddress)
			}
			if !Public(ap.Addr()) {
				return fmt.Errorf("%s: %w", ap.Addr(), ErrPrivateAddress)
			}
			return nil
		}
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us and bypass the address check
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return &FetchError{Reason: "too many redirects", Forbidden: true}
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return &FetchError{Reason: "redirected to a " + req.URL.Scheme + " URL; only http and https are fetched", Forbidden: true}
			}
			return nil
		},
	}
}

// Public reports whether a is a globally routable unicast address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds any IPv4
}

// FetchableURL reports whether raw is an absolute http(s) URL with a host.
func FetchableURL(raw string) bool {
	u, err := url.Parse(strings.TrimSpace(raw))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// Fetch downloads raw, at most limit bytes (limit <= 0 or above MaxSize:
// MaxSize), within the fetch timeout. A file over the limit is a
// *TooLargeError; a permanent failure a *FetchError; anything else may be
// retried.
func (s *Store) Fetch(ctx context.Context, raw string, limit int64) (*File, error) {
	if limit <= 0 || limit > s.opts.MaxSize {
		limit = s.opts.MaxSize
	}
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || !FetchableURL(raw) {
		return nil, &FetchError{Reason: "not an http(s) URL", Forbidden: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &FetchError{Reason: "invalid URL", Forbidden: true}
	}
	req.Header.Set("User-Agent", "Jabbergate")
	resp, err := s.client.Do(req)
	if err != nil {
		var fe *FetchError
		if errors.As(err, &fe) {
			return nil, fe
		}
		if errors.Is(err, ErrPrivateAddress) {
			return nil, &FetchError{Reason: "the file's host " + u.Hostname() + " is on a private or local network; the gateway does not fetch from there", Forbidden: true}
		}
		return nil, &transient{fmt.Errorf("download from %s: %w", u.Hostname(), unwrapURL(err))}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return nil, &transient{fmt.Errorf("download from %s: HTTP %s", u.Hostname(), resp.Status)}
	case resp.StatusCode != http.StatusOK:
		return nil, &FetchError{Reason: fmt.Sprintf("the server %s answered %s", u.Hostname(), resp.Status), Status: resp.StatusCode}
	}
	if resp.ContentLength > limit {
		return nil, &TooLargeError{Size: resp.ContentLength, Limit: limit, Known: true}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &transient{fmt.Errorf("download from %s: %w", u.Hostname(), err)}
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Size: int64(len(data)), Limit: limit}
	}
	name := ""
	if _, p, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = p["filename"]
	}
	if name == "" {
		name = path.Base(resp.Request.URL.Path)
		if name == "/" || name == "." {
			name = ""
		}
	}
	name = SanitizeName(name)
	ctype := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || mt == "application/octet-stream" {
		ctype = "" // guess from the name instead
	}
	return &File{Name: name, Type: ContentType(ctype, name), Data: data}, nil
}

// unwrapURL drops the *url.Error wrapper, whose text repeats the whole URL
// (which may carry a capability token).
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
