package main

import (
	"bytes"
	"fmt"
	"github.com/jabbergate/jabbergate/component/componenttest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is one measured load phase.
type loadResult struct {
	Done     int
	Elapsed  time.Duration
	Lat      []time.Duration // sorted
	Errors   int             // iq errors received
	TimedOut bool
}

func (r loadResult) pct(p float64) float64 {
	if len(r.Lat) == 0 {
		return 0
	}
	i := int(p * float64(len(r.Lat)-1))
	return float64(r.Lat[i].Microseconds())
}

// loader drives one component connection: requests with ids q<seq> (iq)
// or bodies jgb-<seq> (message), matched by id or body.
type loader struct {
	c      *compConn
	from   []string // sender JIDs (full); request i uses from[i%len]
	mu     sync.Mutex
	sent   map[int]time.Time
	onDone func(seq int, lat time.Duration, isErr bool)
	other  func(el []byte) // stanzas that match no request
}

func newLoader(c *compConn, from []string) *loader {
	l := &loader{c: c, from: from, sent: map[int]time.Time{}}
	go l.read()
	return l
}

func (l *loader) read() {
	var buf []byte
	var err error
	for {
		if buf, err = componenttest.SplitStanza(l.c.r, buf[:0]); err != nil {
			return
		}
		seq, isErr, ok := -1, false, false
		switch {
		case bytes.HasPrefix(buf, []byte("<iq")):
			t := componenttest.RawAttr(buf, "type")
			if t == "get" || t == "set" { // the gateway asking the "user": answer empty
				out := fmt.Appendf(nil, "<iq type='result' id='%s' from='%s' to='%s'/>", componenttest.RawAttr(buf, "id"), componenttest.RawAttr(buf, "to"), componenttest.RawAttr(buf, "from"))
				l.c.write(out, true)
				continue
			}
			if s, found := strings.CutPrefix(componenttest.RawAttr(buf, "id"), "q"); found {
				if n, err := strconv.Atoi(s); err == nil {
					seq, ok, isErr = n, true, t == "error"
				}
			}
		case bytes.HasPrefix(buf, []byte("<message")):
			if s, found := strings.CutPrefix(body(buf), "jgb-"); found {
				if n, err := strconv.Atoi(s); err == nil {
					seq, ok = n, true
				}
			}
		}
		if !ok {
			if l.other != nil {
				l.other(buf)
			}
			continue
		}
		now := time.Now()
		l.mu.Lock()
		t0, found := l.sent[seq]
		delete(l.sent, seq)
		cb := l.onDone
		l.mu.Unlock()
		if found && cb != nil {
			cb(seq, now.Sub(t0), isErr)
		}
	}
}

// request renders request seq of kind to the component domain to.
func (l *loader) request(kind, to string, seq int, contacts int) []byte {
	from := l.from[seq%len(l.from)]
	switch kind {
	case "ping":
		return fmt.Appendf(nil, "<iq type='get' id='q%d' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", seq, from, to)
	case "disco":
		return fmt.Appendf(nil, "<iq type='get' id='q%d' from='%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", seq, from, to)
	default: // message
		return fmt.Appendf(nil, "<message type='chat' id='m%d' from='%s' to='c%d@%s'><body>jgb-%d</body></message>", seq, from, seq%contacts, to, seq)
	}
}

// run sends n requests starting at sequence number first with at most
// window outstanding, writes batched and flushed when the window is full.
func (l *loader) run(kind, to string, first, n, window, contacts int, timeout time.Duration) loadResult {
	slots := make(chan struct{}, window)
	for range window {
		slots <- struct{}{}
	}
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var errs int
	all := make(chan struct{})
	l.mu.Lock()
	l.onDone = func(seq int, d time.Duration, isErr bool) {
		if seq < first || seq >= first+n {
			return
		}
		mu.Lock()
		lat = append(lat, d)
		if isErr {
			errs++
		}
		if len(lat) == n {
			close(all)
		}
		mu.Unlock()
		slots <- struct{}{}
	}
	l.mu.Unlock()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	timedOut := false
send:
	for i := first; i < first+n; i++ {
		select {
		case <-slots:
		default:
			l.c.flush()
			select {
			case <-slots:
			case <-deadline.C:
				timedOut = true
				break send
			}
		}
		req := l.request(kind, to, i, contacts)
		l.mu.Lock()
		l.sent[i] = time.Now()
		l.mu.Unlock()
		if err := l.c.write(req, false); err != nil {
			timedOut = true
			break
		}
	}
	l.c.flush()
	if !timedOut {
		select {
		case <-all:
		case <-deadline.C:
			timedOut = true
		}
	}
	elapsed := time.Since(start)
	l.mu.Lock()
	l.onDone = nil
	clear(l.sent)
	l.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	r := loadResult{Done: len(lat), Elapsed: elapsed, Lat: slices.Clone(lat), Errors: errs, TimedOut: timedOut}
	slices.Sort(r.Lat)
	return r
}
