// Package twiliotest is a fake of Twilio's Messages API for tests: an
// httptest server on 127.0.0.1 that answers like Twilio's documented REST
// API (https://www.twilio.com/docs/sms/api/message-resource), with its JSON
// error bodies {"code", "message", "more_info", "status"} for the codes
// the adapter maps (20003 authenticate, 21211 invalid To, 21602 neither
// body nor media, 21610 unsubscribed recipient, 21617 body too long, 21620
// invalid media URL, 21623 more than 10 media, 20429 too many requests)
// and injectable faults (5xx, HTML bodies, hangs). GET
// Accounts/{sid}/IncomingPhoneNumbers.json lists the numbers given with
// AddNumbers, filtered by PhoneNumber (which, as at Twilio, also matches
// part of a number).
//
// MMS: MediaUrl may be repeated (up to 10). Like Twilio, the fake refuses
// malformed ones at once (21620: not an absolute http(s) URL) and fetches
// the media itself when it accepts the message (before answering, so tests
// see the result at once); what it got, or why it could not, is in
// Message.Media. Twilio fetches asynchronously and reports a failed fetch
// or media over 5 MB in total as a failed message; the fake only records
// it.
package twiliotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Message is a message the fake accepted.
type Message struct {
	SID, AccountSID, From, To, Body, StatusCallback string
	// Media are the MediaUrl fetched for an MMS, in order.
	Media []Media
}

// Media is one MediaUrl of an MMS and what the fake fetched from it.
type Media struct {
	URL  string
	Type string // Content-Type of the answer
	Data []byte
	Err  string // why the fetch failed ("" on success)
}

// Fault is an injected failure for the next request.
type Fault string

// Faults.
const (
	Fault500     Fault = "500"     // 500 with Twilio's JSON error body
	Fault503HTML Fault = "503html" // 503 with an HTML page (a load balancer)
	Fault200HTML Fault = "200html" // 200 with an HTML page (a captive portal; the request never reaches the fake)
	Fault429     Fault = "429"     // 429, code 20429, Retry-After: 7
	FaultHang    Fault = "hang"    // no answer until the client gives up
	// FaultBadJSON, FaultNoAnswer and FaultAcceptedHTML take the request
	// as usual (a send is accepted and in Sent, as Twilio would have
	// billed it) and garble only the 2xx answer.
	FaultBadJSON      Fault = "badjson"  // 2xx with a truncated JSON body ({"sid": "SMtrunc)
	FaultNoAnswer     Fault = "emptysid" // 2xx JSON without a sid
	FaultAcceptedHTML Fault = "201html"  // 2xx with an HTML page
	Fault20003        Fault = "401"      // 401 code 20003 whatever the credentials
	Fault21612        Fault = "21612"    // 400 code 21612
	Fault21408        Fault = "21408"    // 400 code 21408
	faultNone         Fault = ""
)

// Server is the fake. Configure it before use; the exported fields are
// read under its lock.
type Server struct {
	*httptest.Server
	// AccountSID and AuthToken are the valid credentials.
	AccountSID, AuthToken string
	// BeforeAnswer, when set, is called with each message the fake
	// accepted before it answers the request that sent it: a status
	// callback Twilio sends before its 201 reaches the client.
	BeforeAnswer func(Message)

	mu       sync.Mutex
	numbers  []string // the account's phone numbers (IncomingPhoneNumbers)
	optedOut map[string]bool
	faults   []Fault
	sent     []Message
	hang     chan struct{}
}

// New starts a fake with the given credentials. Close it when done.
func New(sid, token string) *Server {
	s := &Server{AccountSID: sid, AuthToken: token, optedOut: map[string]bool{}, hang: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Close releases hung requests and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.hang:
	default:
		close(s.hang)
	}
	s.mu.Unlock()
	s.Server.Close()
}

// AddNumbers gives the account phone numbers (E.164), listed by
// GET …/IncomingPhoneNumbers.json.
func (s *Server) AddNumbers(numbers ...string) {
	s.mu.Lock()
	s.numbers = append(s.numbers, numbers...)
	s.mu.Unlock()
}

// OptOut makes sends to number fail with 21610.
func (s *Server) OptOut(number string) {
	s.mu.Lock()
	s.optedOut[number] = true
	s.mu.Unlock()
}

// Fail queues faults for the next requests, one each.
func (s *Server) Fail(f ...Fault) {
	s.mu.Lock()
	s.faults = append(s.faults, f...)
	s.mu.Unlock()
}

// Sent returns the accepted messages.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

func (s *Server) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return faultNone
	}
	f := s.faults[0]
	s.faults = s.faults[1:]
	return f
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

var (
	messagesPath = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/Messages\.json$`)
	accountPath  = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)\.json$`)
	numbersPath  = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/IncomingPhoneNumbers\.json$`)
	e164         = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

const html = "<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>Oops</h1></body></html>"

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	f := s.nextFault()
	switch f {
	case FaultBadJSON, FaultNoAnswer, FaultAcceptedHTML:
		w = &garbler{ResponseWriter: w, fault: f}
	}
	switch f {
	case Fault500:
		apiError(w, 500, 20500, "Internal Server Error")
		return
	case Fault503HTML:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(503)
		fmt.Fprint(w, html)
		return
	case Fault200HTML:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, html)
		return
	case Fault429:
		w.Header().Set("Retry-After", "7")
		apiError(w, 429, 20429, "Too Many Requests")
		return
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.hang:
		}
		return
	case Fault20003:
		apiError(w, 401, 20003, "Authenticate")
		return
	case Fault21612:
		apiError(w, 400, 21612, "The 'To' phone number is not currently reachable using the 'From' phone number via SMS.")
		return
	case Fault21408:
		apiError(w, 400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.AccountSID || pass != s.AuthToken {
		apiError(w, 401, 20003, "Authenticate")
		return
	}
	if m := accountPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		if m[1] != s.AccountSID {
			apiError(w, 404, 20404, "The requested resource was not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"sid": s.AccountSID, "status": "active", "type": "Full"})
		return
	}
	if m := numbersPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		if m[1] != s.AccountSID {
			apiError(w, 404, 20404, "The requested resource was not found")
			return
		}
		// Like Twilio, PhoneNumber also matches part of a number.
		want := r.URL.Query().Get("PhoneNumber")
		list := []map[string]any{}
		s.mu.Lock()
		for i, n := range s.numbers {
			if strings.Contains(n, want) {
				list = append(list, map[string]any{"sid": fmt.Sprintf("PN%032x", i+1), "account_sid": s.AccountSID,
					"phone_number": n, "friendly_name": n, "capabilities": map[string]bool{"sms": true, "mms": true, "voice": true}})
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"incoming_phone_numbers": list, "page": 0, "page_size": 50,
			"first_page_uri": r.URL.RequestURI(), "next_page_uri": nil, "previous_page_uri": nil, "uri": r.URL.RequestURI()})
		return
	}
	m := messagesPath.FindStringSubmatch(r.URL.Path)
	if m == nil || r.Method != http.MethodPost || m[1] != s.AccountSID {
		apiError(w, 404, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if err := r.ParseForm(); err != nil {
		apiError(w, 400, 20001, "malformed form")
		return
	}
	to, from, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")
	media := r.PostForm["MediaUrl"]
	for _, m := range media {
		if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			apiError(w, 400, 21620, "Invalid media URL(s)")
			return
		}
	}
	switch {
	case !e164.MatchString(to):
		apiError(w, 400, 21211, "The 'To' number "+to+" is not a valid phone number.")
		return
	case !e164.MatchString(from):
		apiError(w, 400, 21212, "The 'From' number "+from+" is not a valid phone number, shortcode, or alphanumeric sender ID.")
		return
	case len(media) > 10:
		apiError(w, 400, 21623, "Number of media files exceeds allowed limit")
		return
	case strings.TrimSpace(body) == "" && len(media) == 0:
		apiError(w, 400, 21602, "Message body is required.")
		return
	case utf8.RuneCountInString(body) > 1600:
		apiError(w, 400, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	}
	var fetched []Media
	for _, m := range media {
		fetched = append(fetched, fetch(m))
	}
	s.mu.Lock()
	if s.optedOut[to] {
		s.mu.Unlock()
		apiError(w, 400, 21610, "Attempt to send to unsubscribed recipient")
		return
	}
	b := make([]byte, 16)
	rand.Read(b)
	msg := Message{SID: "SM" + hex.EncodeToString(b), AccountSID: s.AccountSID, From: from, To: to, Body: body,
		StatusCallback: r.PostForm.Get("StatusCallback"), Media: fetched}
	s.sent = append(s.sent, msg)
	before := s.BeforeAnswer
	s.mu.Unlock()
	if before != nil {
		before(msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"sid": msg.SID, "account_sid": msg.AccountSID, "to": to, "from": from, "body": body, "num_media": strconv.Itoa(len(media)),
		"status": "queued", "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
		"price": nil, "error_code": nil, "error_message": nil,
		"uri": "/2010-04-01/Accounts/" + s.AccountSID + "/Messages/" + msg.SID + ".json",
	})
}

// garbler replaces a 2xx answer's body as its fault says; other answers
// pass unchanged.
type garbler struct {
	http.ResponseWriter
	fault  Fault
	status int
	done   bool
}

func (g *garbler) WriteHeader(status int) {
	g.status = status
	if status/100 == 2 && g.fault == FaultAcceptedHTML {
		g.Header().Set("Content-Type", "text/html")
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *garbler) Write(b []byte) (int, error) {
	if g.status == 0 {
		g.WriteHeader(http.StatusOK)
	}
	if g.status/100 != 2 {
		return g.ResponseWriter.Write(b)
	}
	if !g.done {
		g.done = true
		switch g.fault {
		case FaultBadJSON:
			fmt.Fprint(g.ResponseWriter, `{"sid": "SMtrunc`)
		case FaultNoAnswer:
			fmt.Fprint(g.ResponseWriter, `{"status": "queued"}`)
		case FaultAcceptedHTML:
			fmt.Fprint(g.ResponseWriter, html)
		}
	}
	return len(b), nil
}

// fetch gets one MediaUrl as Twilio would: GET, 2xx, at most 5 MB.
func fetch(u string) Media {
	m := Media{URL: u}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		m.Err = err.Error()
		return m
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		m.Err = "HTTP " + resp.Status
		return m
	}
	m.Type = resp.Header.Get("Content-Type")
	m.Data, err = io.ReadAll(io.LimitReader(resp.Body, 5_000_001))
	if err != nil {
		m.Err = err.Error()
	} else if len(m.Data) > 5_000_000 {
		m.Err = "larger than 5 MB"
	}
	return m
}
