package faultnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Mode is how the fake service answers Send.
type Mode int

// Send modes.
const (
	ModeOK   Mode = iota // record the message, answer 200 with its id
	ModeFail             // answer 503
	ModeHang             // answer nothing until the client gives up
)

// Server is the fake legacy service on a 127.0.0.1 port. It keeps every
// inbound message (the legacy side never forgets what was not taken) and
// records every send. Safe for concurrent use.
type Server struct {
	URL string // http://127.0.0.1:PORT

	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	in       []Message     // pushed, Seq = index+1
	more     chan struct{} // closed and replaced on every push
	sent     []Message     // accepted sends, in arrival order
	attempts []time.Time   // every /send request
	refused  int           // Emit refusals reported by the adapter
	taken    int64         // highest cursor a poll acknowledged
	mode     Mode
	hang     chan struct{} // closed to release hanging requests
}

// NewServer starts a fake service on a free loopback port.
func NewServer() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), ln: ln, more: make(chan struct{}), hang: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /poll", s.poll)
	mux.HandleFunc("POST /send", s.send)
	mux.HandleFunc("POST /refused", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the service and releases hanging requests.
func (s *Server) Close() error {
	s.SetMode(ModeOK)
	return s.srv.Close()
}

// Push adds an inbound message to chat and returns its id, which is
// chat-N with N counting that chat's messages from 1.
func (s *Server) Push(chat, text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 1
	for _, m := range s.in {
		if m.Chat == chat {
			n++
		}
	}
	m := Message{Seq: int64(len(s.in) + 1), ID: fmt.Sprintf("%s-%d", chat, n), Chat: chat, Text: text}
	s.in = append(s.in, m)
	close(s.more)
	s.more = make(chan struct{})
	return m.ID
}

// SetMode changes how sends are answered; leaving ModeHang releases the
// requests hanging.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == ModeHang && m != ModeHang {
		close(s.hang)
		s.hang = make(chan struct{})
	}
	s.mode = m
}

// Sent returns the accepted sends in arrival order (resends included).
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.sent...)
}

// Attempts returns the time of every send request, accepted or not.
func (s *Server) Attempts() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts...)
}

// Refused returns how many times the adapter reported a refused Emit.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Taken returns how many inbound messages the adapter has taken (Emit
// succeeded), as its last poll said; messages after it are still kept.
func (s *Server) Taken() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.taken)
}

// Pushed returns how many inbound messages were pushed.
func (s *Server) Pushed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.in)
}

const pollMax = 256

func (s *Server) poll(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	s.mu.Lock()
	s.taken = max(s.taken, after)
	s.mu.Unlock()
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		var out []Message
		if after < int64(len(s.in)) {
			out = append(out, s.in[after:min(int64(len(s.in)), after+pollMax)]...)
		}
		more := s.more
		s.mu.Unlock()
		if len(out) > 0 {
			writeJSON(w, out)
			return
		}
		select {
		case <-more:
		case <-deadline.C:
			writeJSON(w, []Message{})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var m Message
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err == nil && m.Key == "" {
		err = errors.New("no key")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	mode, hang := s.mode, s.hang
	if mode == ModeOK {
		s.sent = append(s.sent, m)
	}
	s.mu.Unlock()
	switch mode {
	case ModeFail:
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
	case ModeHang:
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		http.Error(w, "gave up", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "out-"+m.Key)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
