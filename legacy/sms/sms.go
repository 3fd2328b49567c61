// Package sms bridges XMPP users to SMS through three kinds of route:
// Twilio's REST API and Twilio-compatible ones such as SignalWire (package
// twilio), Kannel's smsbox HTTP interface (package kannel) and SMPP 3.4
// (package smpp, over github.com/linxGnu/gosmpp). Contacts are E.164
// numbers ("+15551234567@sms.example.org"), following the Soprani.ca SGX
// conventions (https://wiki.soprani.ca/SGX) so the gateway can serve as a
// Cheogram backend route.
//
// User model: the operator configures one or more routes and a pool of
// numbers; each user registers with one number of the pool (the number is
// the account id), or, when the operator allows it, with their own Twilio
// account SID, auth token and number. Outgoing messages go through the
// routes in the configured order: a transient failure (5xx, timeout, rate
// limit, the operator's credentials refused, SMPP not bound) on one route
// tries the next (failover); a permanent one (invalid number, opted out)
// is returned at once. A provider that accepted the message (a 2xx, or
// ESME_ROK) has sent it, even when its answer cannot be read: it is never
// sent again nor failed over (outbound.go).
//
// What works:
//   - segment counting of our own (Count, Split: GSM 03.38 default
//     alphabet and extension table, 160/153 septets; UCS-2 70/67 UTF-16
//     units; escape and surrogate pairs never split) and a per-user limit
//     on segments per message (operator option max_segments, user setting
//     max_segments) → ErrRejected with the count;
//   - number normalisation with github.com/nyaruka/phonenumbers and a
//     default region (Resolver, XEP-0100 prompt);
//   - Twilio: sending, error codes mapped to legacy sentinels, webhooks
//     verified with X-Twilio-Signature (bad signature → 403), incoming
//     messages, status callbacks ("delivered" → legacy.Receipt);
//   - Kannel: sendsms with coding chosen from Count, MO and DLR webhooks
//     authenticated by a shared secret (tested against a real Kannel with
//     fakesmsc);
//   - SMPP: one shared bind_transceiver, up while at least one session
//     runs; concatenated submit_sm with a UDH (8-bit reference) and a
//     sequence number of its own per part; deliver_sm answered ESME_ROK
//     only after Sink.Emit returned, ESME_RX_T_APPN otherwise;
//     concatenated MO (UDH with 8-bit or 16-bit references) reassembled,
//     every part kept in the session state (SaveState) before it is
//     acknowledged, delivered with "[part n missing]" markers after
//     smpp_concat_timeout; DELIVRD receipts → legacy.Receipt; a
//     deliver_sm with a broken UDH answered ESME_RINVESMCLASS, logged and
//     counted, the bind kept (package smpp);
//   - a per-number limit of segments a minute (rate_per_minute);
//   - STOP/START/HELP: see inbound.go.
//
// Every webhook answers 2xx only after Sink.Emit returned nil (503
// otherwise, so the provider retries). A webhook (or deliver_sm) finds the
// user by the number the SMS was sent to: every running session registers
// its number with the Network in Run and removes it when Run returns, so
// messages for a user whose session is not running get 503
// (ESME_RX_T_APPN on SMPP).
//
// Delivery reports (Twilio status callbacks, Kannel DLRs, SMPP receipts):
// "delivered" becomes a legacy.Receipt, a final failure a
// legacy.Undelivered carrying the provider's code. A report that comes
// before the provider answered the send is held for that send, and a
// failure is then returned by Send (flight.go).
//
// Incoming MMS media (Twilio) are fetched with the account's credentials
// and become files; one that cannot be fetched stays a URL at the end of
// the text, as SGX does. daily_segments caps what a number sends per day.
//
// Files the user sends go as MMS media on Twilio routes, within Twilio's
// 10 media and 5 MB, and as links in the text on Kannel and SMPP routes:
// the provider is given the URL the file came from (the user's HTTP
// upload, legacy.Attachment.URL); only files without one, or all with
// host_files, are hosted by the adapter in memory under public_url/media/
// (lost on restart): see mms.go.
//
// Not yet: SAR TLVs,
// short codes and alphanumeric senders one can answer, hex/decimal SMPP message-id normalisation, delivering
// inside XMPP when the destination is another user of the gateway,
// Telnyx/Vonage/Plivo.
//
// Options: see README.md and New.
package sms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/time/rate"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms/kannel"
	"github.com/jabbergate/jabbergate/legacy/sms/smpp"
	"github.com/jabbergate/jabbergate/legacy/sms/twilio"
)

// Name is the registry name of this network.
const Name = "sms"

func init() {
	legacy.Register(Name, func(options map[string]string) (legacy.Network, error) {
		return New(options)
	})
}

// Registration and settings field names.
const (
	FieldNumber     = "number"
	FieldTwilioSID  = "twilio_account_sid"
	FieldTwilioAuth = "twilio_auth_token"
	SettingMaxSegs  = "max_segments"
)

// DefaultMaxSegments is the default limit on segments per message.
const DefaultMaxSegments = 10

// maxConcatParts is the most parts of a concatenated SMS: the UDH counts
// them in one octet.
const maxConcatParts = 255

// Network is the SMS network. Safe for concurrent use.
type Network struct {
	region        string
	publicURL     string
	maxSegments   int
	ratePerMin    int
	dailySegments int
	allowOwn      bool
	helpText      string
	pool          []string
	routes        []route
	twilioURL     string
	twilioToken   string // the operator's, for webhooks
	kannelKey     string // the Kannel webhook secret
	httpc         *http.Client
	log           *slog.Logger
	info          legacy.Info

	smpp          *smppRoute // nil without smpp_addr; its bind runs while sessions use it
	concatTimeout time.Duration
	media         *mediaHost // files without a URL, sent as MMS or links (mms.go)
	hostFiles     bool       // host every file, even one with its own URL (mms.go)

	counts counters // legacy.EventCounter (counters.go)

	mu       sync.Mutex
	sessions map[string]*session // running sessions by E.164 number
}

var (
	_ legacy.Network   = (*Network)(nil)
	_ legacy.Resolver  = (*Network)(nil)
	_ legacy.Registrar = (*Network)(nil)
	_ legacy.Webhooker = (*Network)(nil)
	_ legacy.Session   = (*session)(nil)
)

var knownOptions = []string{
	"routes", "numbers", "default_region", "public_url", "max_segments", "allow_own_credentials",
	"help_text", "timeout", "rate_per_minute", "daily_segments",
	"twilio_account_sid", "twilio_auth_token", "twilio_api_url",
	"kannel_send_url", "kannel_username", "kannel_password", "kannel_smsc", "kannel_secret",
	"smpp_addr", "smpp_system_id", "smpp_password", "smpp_system_type", "smpp_concat_timeout",
	"media_ttl", "host_files",
}

// New builds the network from its options (all optional unless said):
//
//	routes                 route order for failover, e.g. "twilio,kannel" (default: every configured route, Twilio first)
//	numbers                the operator's number pool, separated by commas, any notation default_region parses
//	default_region         ISO 3166 region for numbers without a country code (default US)
//	public_url             the public URL of this bridge's webhooks, https://host/webhooks/<bridge domain>; required for
//	                       Twilio signature checks, for status callbacks/DLRs and to host files without a URL
//	max_segments           the most SMS segments one message may take (default 10)
//	allow_own_credentials  "true": users may register with their own Twilio account
//	rate_per_minute        the most SMS segments one number sends per minute (default 0: no limit)
//	daily_segments         spend cap: the most SMS segments one number sends per UTC day (default 0: no cap);
//	                       over it, messages wait for the next day (or fail with resource-constraint at the TTL)
//	help_text              auto-reply to HELP/INFO on Kannel routes (Twilio answers those itself)
//	timeout                HTTP timeout towards providers (default 30s)
//	twilio_account_sid, twilio_auth_token (or twilio_auth_token_file), twilio_api_url (default https://api.twilio.com)
//	kannel_send_url (e.g. http://127.0.0.1:13013/cgi-bin/sendsms), kannel_username, kannel_password, kannel_smsc,
//	kannel_secret          the shared secret Kannel's MO get-url and the DLR URLs carry
//	smpp_addr (host:port), smpp_system_id, smpp_password (or smpp_password_file), smpp_system_type
//	smpp_concat_timeout    how long parts of a concatenated SMS wait for the others (default 30m)
//	media_ttl              how long files hosted by the adapter stay fetchable under public_url/media/ (default 24h; mms.go)
//	host_files             "true": host every file the users send under public_url/media/ instead of giving the
//	                       provider the URL the file came from (for upload services the provider cannot reach)
//
// It validates and does no I/O. Every problem is reported at once, joined
// with errors.Join: first those of single options, each a
// *legacy.OptionError, in the order of the options' names; then those
// between options (a route's options given without the one it needs, a
// route in routes that no options configure, no route at all, an empty
// pool), as *legacy.OptionError when one option is at fault.
func New(options map[string]string) (*Network, error) {
	var errs []*legacy.OptionError // of single options, sorted by name below
	bad := func(k, problem string) { errs = append(errs, &legacy.OptionError{Option: k, Problem: problem}) }
	var between []error // between options, in this order
	for k := range options {
		if !slices.Contains(knownOptions, k) {
			bad(k, "unknown option (known: "+strings.Join(knownOptions, ", ")+")")
		}
	}
	o := func(k string) string { return strings.TrimSpace(options[k]) }
	n := &Network{
		region: strings.ToUpper(o("default_region")), publicURL: strings.TrimRight(o("public_url"), "/"),
		maxSegments: DefaultMaxSegments, helpText: o("help_text"),
		twilioURL: o("twilio_api_url"), twilioToken: o("twilio_auth_token"), kannelKey: o("kannel_secret"),
		log: slog.Default().With("network", Name), sessions: map[string]*session{},
	}
	if n.region == "" {
		n.region = "US"
	}
	regionOK := phonenumbers.GetCountryCodeForRegion(n.region) != 0
	if !regionOK {
		bad("default_region", fmt.Sprintf("default_region %q is not a region code (e.g. US, GB, DE)", n.region))
	}
	if oe := checkHTTPURL("public_url", n.publicURL); oe != nil {
		errs = append(errs, oe)
	}
	if s := o("max_segments"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxConcatParts {
			bad("max_segments", fmt.Sprintf("max_segments %q must be a whole number from 1 to %d (a concatenated SMS has at most %d parts)",
				s, maxConcatParts, maxConcatParts))
		}
		n.maxSegments = v
	}
	if s := o("rate_per_minute"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			bad("rate_per_minute", fmt.Sprintf("rate_per_minute %q must be a number of segments, 0 for no limit", s))
		}
		n.ratePerMin = v
	}
	if s := o("daily_segments"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			bad("daily_segments", fmt.Sprintf("daily_segments %q must be a number of segments, 0 for no cap", s))
		}
		n.dailySegments = v
	}
	allowOwnOK := true // allow_own_credentials is absent or valid: the checks of the routes can trust n.allowOwn
	if s := o("allow_own_credentials"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			bad("allow_own_credentials", fmt.Sprintf("allow_own_credentials %q must be true or false", s))
			allowOwnOK = false
		}
		n.allowOwn = v
	}
	timeout := 30 * time.Second
	if s := o("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad("timeout", fmt.Sprintf("timeout %q must be a positive duration such as 30s", s))
		}
		timeout = d
	}
	mediaTTL := DefaultMediaTTL
	if s := o("media_ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad("media_ttl", fmt.Sprintf("media_ttl %q must be a positive duration such as 24h", s))
		}
		mediaTTL = d
	}
	if s := o("host_files"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			bad("host_files", fmt.Sprintf("host_files %q must be true or false", s))
		}
		if v && n.publicURL == "" {
			between = append(between, &legacy.OptionError{Option: "host_files", Problem: "host_files needs public_url: files are hosted under it"})
		}
		n.hostFiles = v
	}
	if oe := checkHTTPURL("twilio_api_url", n.twilioURL); oe != nil {
		errs = append(errs, oe)
	}
	sid := o("twilio_account_sid")
	if (sid == "") != (n.twilioToken == "") {
		between = append(between, errors.New("sms: give both twilio_account_sid and twilio_auth_token (or twilio_auth_token_file)"))
	}
	kannelURL := o("kannel_send_url")
	kannelRest := o("kannel_username") != "" || o("kannel_password") != "" || o("kannel_smsc") != ""
	if oe := checkHTTPURL("kannel_send_url", kannelURL); oe != nil {
		errs = append(errs, oe)
	}
	if kannelURL == "" && kannelRest {
		between = append(between, errors.New("sms: kannel_* options without kannel_send_url"))
	}
	n.concatTimeout = DefaultConcatTimeout
	if s := o("smpp_concat_timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad("smpp_concat_timeout", fmt.Sprintf("smpp_concat_timeout %q must be a positive duration such as 30m", s))
		}
		n.concatTimeout = d
	}
	smppAddr := o("smpp_addr")
	smppRest := o("smpp_system_id") != "" || o("smpp_password") != "" || o("smpp_system_type") != ""
	if smppAddr != "" {
		if _, _, err := net.SplitHostPort(smppAddr); err != nil {
			bad("smpp_addr", fmt.Sprintf("smpp_addr %q must be host:port", smppAddr))
		}
		if o("smpp_system_id") == "" {
			between = append(between, &legacy.OptionError{Option: "smpp_addr", Problem: "smpp_addr without smpp_system_id"})
		}
	} else if smppRest {
		between = append(between, errors.New("sms: smpp_* options without smpp_addr"))
	}
	// The routes the options configure, or mean to: one whose options are
	// incomplete is reported above, not again as missing from routes or
	// as no route at all. Without errors these are the routes built below.
	configured := map[string]bool{
		"twilio": sid != "" || n.twilioToken != "",
		"kannel": kannelURL != "" || kannelRest,
		"smpp":   smppAddr != "" || smppRest,
	}
	order := splitList(o("routes"))
	if len(order) == 0 {
		for _, r := range []string{"twilio", "kannel", "smpp"} {
			if configured[r] {
				order = append(order, r)
			}
		}
	}
	for i, name := range order {
		if _, known := configured[name]; !known {
			between = append(between, &legacy.OptionError{Option: "routes", Problem: fmt.Sprintf("unknown route %q (routes are twilio, kannel and smpp)", name)})
		} else if slices.Contains(order[:i], name) {
			between = append(between, &legacy.OptionError{Option: "routes", Problem: fmt.Sprintf("route %q listed twice", name)})
		} else if !configured[name] {
			between = append(between, &legacy.OptionError{Option: "routes", Problem: fmt.Sprintf("route %q in routes is not configured (twilio needs twilio_account_sid and twilio_auth_token; kannel needs kannel_send_url; smpp needs smpp_addr)", name)})
		}
	}
	numbersOK := regionOK // numbers are read in default_region: not checked without one
	if regionOK {
		for _, s := range strings.FieldsFunc(o("numbers"), func(r rune) bool { return r == ',' || r == ';' || r == '\n' }) {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			e, err := n.normalize(s)
			if err != nil {
				bad("numbers", fmt.Sprintf("%q is not a phone number", s))
				numbersOK = false
				continue
			}
			if !slices.Contains(n.pool, e) {
				n.pool = append(n.pool, e)
			}
		}
	}
	if allowOwnOK && !n.allowOwn {
		if !configured["twilio"] && !configured["kannel"] && !configured["smpp"] {
			between = append(between, errors.New("sms: no route: configure twilio_*, kannel_* or smpp_* options, or allow_own_credentials"))
		} else if numbersOK && len(n.pool) == 0 {
			between = append(between, &legacy.OptionError{Option: "numbers", Problem: "numbers (the operator's number pool) is empty"})
		}
	}
	if len(errs)+len(between) > 0 {
		slices.SortStableFunc(errs, func(a, b *legacy.OptionError) int { return strings.Compare(a.Option, b.Option) })
		all := make([]error, 0, len(errs)+len(between))
		for _, oe := range errs {
			all = append(all, oe)
		}
		return nil, errors.Join(append(all, between...)...)
	}

	n.httpc = &http.Client{Timeout: timeout}
	n.media = &mediaHost{ttl: mediaTTL, now: time.Now}
	rand.Read(n.media.secret[:])
	avail := map[string]route{}
	if configured["twilio"] {
		avail["twilio"] = &twilioRoute{net: n, c: &twilio.Client{BaseURL: n.twilioURL, AccountSID: sid, AuthToken: n.twilioToken, HTTP: n.httpc}}
	}
	if configured["kannel"] {
		avail["kannel"] = &kannelRoute{net: n, c: &kannel.Client{SendURL: kannelURL, Username: o("kannel_username"),
			Password: o("kannel_password"), SMSC: o("kannel_smsc"), HTTP: n.httpc}}
	}
	if configured["smpp"] {
		n.smpp = &smppRoute{net: n, c: &smpp.Client{Addr: smppAddr, SystemID: o("smpp_system_id"), Password: o("smpp_password"),
			SystemType: o("smpp_system_type"), Timeout: timeout, Log: n.log}}
		n.smpp.c.Deliver, n.smpp.c.Receipt = n.smppDeliver, n.smppReceipt
		avail["smpp"] = n.smpp
	}
	for _, name := range order {
		n.routes = append(n.routes, avail[name])
	}
	n.info = n.buildInfo()
	return n, nil
}

// checkHTTPURL refuses a URL option (when set) that is not an absolute
// http or https URL with a host: the adapter only speaks HTTP to providers
// and only gives them http(s) callback URLs.
func checkHTTPURL(option, v string) *legacy.OptionError {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &legacy.OptionError{Option: option, Problem: fmt.Sprintf("%s %q must be an absolute http:// or https:// URL with a host", option, v)}
	}
	return nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == ';' })
}

func (n *Network) buildInfo() legacy.Info {
	num := legacy.Field{Var: FieldNumber, Label: "Your SMS number", Required: true}
	instr := "Choose the phone number your contacts will see and reply to."
	if n.allowOwn {
		num.Desc = "A number of the gateway's pool (" + strings.Join(n.pool, ", ") + "), or your own Twilio number."
		instr += " To use your own Twilio account instead, give its account SID and auth token, and one of its numbers."
	} else {
		num.Type = legacy.ListSingle
		for _, p := range n.pool {
			num.Options = append(num.Options, legacy.Option{Label: p, Value: p})
		}
	}
	fields := []legacy.Field{num}
	if n.allowOwn {
		fields = append(fields,
			legacy.Field{Var: FieldTwilioSID, Label: "Your Twilio account SID (optional)"},
			legacy.Field{Var: FieldTwilioAuth, Label: "Your Twilio auth token (optional)", Type: legacy.TextPrivate, Secret: true})
	}
	// Files: with a route that sends MMS (Twilio, the operator's or the
	// user's own). Twilio is given the URL the core fetched each file from
	// (mms.go), so public_url is not needed for that (it is for host_files
	// and for files without a URL). Without an MMS route the core sends a
	// file's URL as text, which is what Kannel and SMPP could do anyway.
	files := n.allowOwn
	for _, r := range n.routes {
		if _, ok := r.(mmsRoute); ok {
			files = true
		}
	}
	// No MaxFileSize of our own: media.max_size applies; what is over
	// Twilio's MMS limits goes as a link (mms.go), as before files were
	// taken at all.
	return legacy.Info{
		Name:         Name,
		DiscoType:    "sms",
		DisplayName:  "SMS",
		Instructions: instr,
		Fields:       fields,
		Settings:     []legacy.Field{n.maxSegmentsSetting()},
		Prompt:       "Phone number",
		PromptDesc:   "Enter the phone number of the person to text, e.g. +1 555 123 4567",
		Caps:         legacy.Caps{Receipts: true, Files: files},
		// Generous, so that a text over max_segments reaches Send and is
		// refused with its segment count rather than a byte count; still a
		// bound on what the outbox stores.
		MaxTextLength: max(64<<10, 3*gsmSingle*n.maxSegments),
		OutboxTTL:     24 * time.Hour,
	}
}

// maxSegmentsSetting declares the user's max_segments as a choice of 1 to
// the operator's max_segments: the contract has no validator for settings,
// but the core refuses a value that is not one of a list-single field's
// options ("set max_segments 99" or "abc"), and shows the options.
func (n *Network) maxSegmentsSetting() legacy.Field {
	f := legacy.Field{Var: SettingMaxSegs, Type: legacy.ListSingle,
		Label:   "Longest message, in SMS segments (1 to " + strconv.Itoa(n.maxSegments) + ")",
		Default: strconv.Itoa(n.maxSegments),
		Desc:    "Messages that need more SMS segments are refused instead of being sent (and billed) as that many SMS."}
	for i := 1; i <= n.maxSegments; i++ {
		gsm, ucs := gsmSingle, ucs2Single
		if i > 1 {
			gsm, ucs = i*gsmPart, i*ucs2Part
		}
		f.Options = append(f.Options, legacy.Option{Value: strconv.Itoa(i),
			Label: fmt.Sprintf("%d: up to %d characters (%d with characters outside GSM-7, e.g. emoji)", i, gsm, ucs)})
	}
	return f
}

// Info implements legacy.Network.
func (n *Network) Info() legacy.Info { return n.info }

// normalize parses input as a phone number and returns it in E.164. "00"
// as an international prefix is understood whatever the default region.
func (n *Network) normalize(input string) (string, error) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(input), "tel:"))
	if s == "" || strings.ContainsAny(s, "@/") {
		return "", fmt.Errorf("sms: %q is not a phone number: %w", input, legacy.ErrInvalidAddress)
	}
	compact := strings.Map(func(r rune) rune {
		if strings.ContainsRune(" .-()\u00a0", r) {
			return -1
		}
		return r
	}, s)
	if rest, ok := strings.CutPrefix(compact, "00"); ok {
		s = "+" + rest
	}
	num, err := phonenumbers.Parse(s, n.region)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("sms: %q is not a phone number: %w", input, legacy.ErrInvalidAddress)
	}
	if num.GetExtension() != "" {
		// An SMS reaches the line, never an extension: dropping it
		// silently would write to someone else.
		return "", fmt.Errorf("sms: %q has an extension, which SMS cannot reach: %w", input, legacy.ErrInvalidAddress)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// numberOf is the number an address a provider reports stands for (a
// sender, a receipt's recipient, our own number): its E.164 form read in
// default_region, or else, for a run of digits that is no number there,
// the same digits read as international (SMSCs and Kannel often drop the
// "+" and send type of number 0, "unknown"), when that is a possible
// number (normalize checks no more).
// ok is false when neither reads (a short code, an alphanumeric sender),
// and the address is returned as it came.
func (n *Network) numberOf(addr string) (e string, ok bool) {
	if e, err := n.normalize(addr); err == nil {
		return e, true
	}
	digits := strings.TrimSpace(addr)
	if len(digits) < 8 || strings.Trim(digits, "0123456789") != "" {
		return addr, false
	}
	if num, err := phonenumbers.Parse("+"+digits, ""); err == nil && phonenumbers.IsPossibleNumber(num) {
		return phonenumbers.Format(num, phonenumbers.E164), true
	}
	return addr, false
}

// Resolve implements legacy.Resolver: any common notation of a phone
// number ("(555) 123-4567", "+1 555 123 4567", "0044 20 7946 0958") becomes
// its E.164 form; numbers without a country code are read in
// default_region. Numbers are checked for a possible length, not for being
// assigned (fictional 555 numbers pass).
func (n *Network) Resolve(ctx context.Context, input string) (legacy.ChatID, error) {
	e, err := n.normalize(input)
	return legacy.ChatID(e), err
}

// Register implements legacy.Registrar. The account id is the user's
// number in E.164. A number of the pool is accepted as is (exclusive
// assignment is enforced when sessions run: see Run); with own Twilio
// credentials (allow_own_credentials) they are checked against Twilio,
// the number must not be one of the pool's, and it must be one of that
// account's numbers (IncomingPhoneNumbers).
func (n *Network) Register(ctx context.Context, fields map[string]string) (legacy.AccountID, error) {
	num, err := n.normalize(fields[FieldNumber])
	if err != nil {
		return "", &legacy.FieldError{Var: FieldNumber, Reason: "not a phone number"}
	}
	sid, tok := strings.TrimSpace(fields[FieldTwilioSID]), strings.TrimSpace(fields[FieldTwilioAuth])
	if sid != "" || tok != "" {
		if !n.allowOwn {
			return "", &legacy.FieldError{Var: FieldTwilioSID, Reason: "this gateway does not accept your own provider credentials"}
		}
		if sid == "" {
			return "", &legacy.FieldError{Var: FieldTwilioSID, Reason: "required with an auth token"}
		}
		if tok == "" {
			return "", &legacy.FieldError{Var: FieldTwilioAuth, Reason: "required with an account SID"}
		}
		if err := n.notPool(num); err != nil {
			return "", err
		}
		c := n.ownClient(sid, tok)
		if err := c.Check(ctx); err != nil {
			return "", err
		}
		if err := ownsNumber(ctx, c, num); err != nil {
			return "", err
		}
		return legacy.AccountID(num), nil
	}
	if len(n.routes) == 0 {
		return "", &legacy.FieldError{Var: FieldTwilioSID, Reason: "this gateway has no numbers of its own: give your Twilio account SID and auth token"}
	}
	if !slices.Contains(n.pool, num) {
		return "", &legacy.FieldError{Var: FieldNumber, Reason: "not one of the gateway's numbers: " + strings.Join(n.pool, ", ")}
	}
	return legacy.AccountID(num), nil
}

// inPool reports whether num (E.164) is one of the operator's numbers.
func (n *Network) inPool(num string) bool { return slices.Contains(n.pool, num) }

// notPool refuses one of the operator's numbers for an account with its
// own Twilio credentials: its webhooks are signed with the operator's
// token, and it belongs to the pool's users.
func (n *Network) notPool(num string) error {
	if n.inPool(num) {
		return &legacy.FieldError{Var: FieldNumber, Reason: num + " is one of this gateway's own numbers: with your own Twilio account, " +
			"give a number of that account (or leave the account SID and auth token empty to use the gateway's number)"}
	}
	return nil
}

// ownsNumber checks that num is a phone number of the Twilio account of c
// (a FieldError on the number when not).
func ownsNumber(ctx context.Context, c *twilio.Client, num string) error {
	ok, err := c.OwnsNumber(ctx, num)
	if err != nil {
		return err
	}
	if !ok {
		return &legacy.FieldError{Var: FieldNumber, Reason: num + " is not a phone number of the Twilio account " + c.AccountSID +
			"; give one of its numbers (Phone Numbers in the Twilio console)"}
	}
	return nil
}

func (n *Network) ownClient(sid, tok string) *twilio.Client {
	return &twilio.Client{BaseURL: n.twilioURL, AccountSID: sid, AuthToken: tok, HTTP: n.httpc, OwnCredentials: true}
}

// Open implements legacy.Network. It does no I/O.
func (n *Network) Open(ctx context.Context, acct legacy.Account, sink legacy.Sink) (legacy.Session, error) {
	if sink == nil {
		return nil, errors.New("sms: nil sink")
	}
	num, err := n.normalize(string(acct.ID))
	if err != nil {
		return nil, fmt.Errorf("sms: account id: %w", err)
	}
	s := &session{net: n, log: acct.Logger(n.log), owner: acct.Owner, number: num, sink: sink, routes: n.routes, maxSegments: n.maxSegments}
	s.dayLimit = n.dailySegments
	if n.ratePerMin > 0 {
		// Burst: a minute's worth, and at least one message of the longest kind.
		s.limit = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n.ratePerMin)), max(n.ratePerMin, n.maxSegments))
	}
	if v, err := strconv.Atoi(acct.Settings[SettingMaxSegs]); err == nil && v >= 1 && v < s.maxSegments {
		s.maxSegments = v
	}
	if sid, tok := acct.Fields[FieldTwilioSID], acct.Fields[FieldTwilioAuth]; sid != "" && tok != "" {
		s.own = n.ownClient(sid, tok)
		s.routes = []route{&twilioRoute{net: n, c: s.own}}
	}
	if err := s.loadState(acct.State); err != nil {
		s.log.Warn("ignoring unreadable session state", "err", err)
	}
	return s, nil
}

// claim registers s as the running session of its number. Another owner's
// running session on the same number is a conflict.
func (n *Network) claim(s *session) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.sessions[s.number]; ok && cur.owner != s.owner {
		return fmt.Errorf("sms: the number %s is already in use by another account of this gateway; register again with another number: %w",
			s.number, legacy.ErrUnauthorized)
	}
	n.sessions[s.number] = s
	return nil
}

func (n *Network) release(s *session) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sessions[s.number] == s {
		delete(n.sessions, s.number)
	}
}

// lookup returns the running session of number.
func (n *Network) lookup(number string) *session {
	e, ok := n.numberOf(number)
	if !ok {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sessions[e]
}
