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

// loader drives the load connections: one component connection, whose
// requests carry from addresses (from[i%len]), or one c2s connection per
// user, whose requests the server stamps (from is then empty). Request i
// goes out on conns[i%len(conns)]; answers are matched by iq id q<seq> or
// message body jgb-<seq>.
type loader struct {
	conns  []*compConn
	c2s    bool
	from   []string // component: sender JIDs (full); c2s: the users' bound JIDs
	mu     sync.Mutex
	sent   map[int]time.Time
	onDone func(seq int, lat time.Duration, isErr bool)
	other  func(el []byte) // stanzas that match no request
}

// newLoader starts reading conns. c2s: the connections are users' c2s
// streams (from: their bound JIDs); else one component connection and the
// sender JIDs it writes in from.
func newLoader(conns []*compConn, from []string, c2s bool) *loader {
	l := &loader{conns: conns, c2s: c2s, from: from, sent: map[int]time.Time{}}
	for _, c := range conns {
		go l.read(c)
	}
	return l
}

// conn returns the connection that carries request seq.
func (l *loader) conn(seq int) *compConn { return l.conns[seq%len(l.conns)] }

// fromAttr is request seq's from attribute (with its leading space), or
// "" on c2s streams, where the server stamps it.
func (l *loader) fromAttr(seq int) string {
	if l.c2s {
		return ""
	}
	return " from='" + l.from[seq%len(l.from)] + "'"
}

// flushAll flushes every connection.
func (l *loader) flushAll() {
	for _, c := range l.conns {
		c.flush()
	}
}

func (l *loader) read(c *compConn) {
	var buf []byte
	var err error
	for {
		if buf, err = componenttest.SplitStanza(c.r, buf[:0]); err != nil {
			return
		}
		seq, isErr, ok := -1, false, false
		switch {
		case bytes.HasPrefix(buf, []byte("<iq")):
			t := componenttest.RawAttr(buf, "type")
			if t == "get" || t == "set" { // the gateway (or server) asking the "user": answer empty
				from := ""
				if !l.c2s {
					from = " from='" + componenttest.RawAttr(buf, "to") + "'"
				}
				out := fmt.Appendf(nil, "<iq type='result' id='%s'%s to='%s'/>", componenttest.RawAttr(buf, "id"), from, componenttest.RawAttr(buf, "from"))
				c.write(out, true)
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
	from := l.fromAttr(seq)
	switch kind {
	case "ping":
		return fmt.Appendf(nil, "<iq type='get' id='q%d'%s to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", seq, from, to)
	case "disco":
		return fmt.Appendf(nil, "<iq type='get' id='q%d'%s to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", seq, from, to)
	default: // message
		return fmt.Appendf(nil, "<message type='chat' id='m%d'%s to='c%d@%s'><body>jgb-%d</body></message>", seq, from, seq%contacts, to, seq)
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
			l.flushAll()
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
		if err := l.conn(i).write(req, false); err != nil {
			timedOut = true
			break
		}
	}
	l.flushAll()
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
