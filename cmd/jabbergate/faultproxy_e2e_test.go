package main

import (
	"io"
	"net"
	"sync"
	"testing"
)

// faultProxy forwards loopback TCP connections to target, and can break
// them the ways the fault tests need: Hold refuses new connections (closes
// them at once), Pause stops reading from the clients (a server that does
// not read: the client's writes fill the socket buffers and block).
type faultProxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	hold   bool
	paused bool
	closed bool
	conns  map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		hold := p.hold || p.closed
		p.mu.Unlock()
		if hold {
			c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *faultProxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	var once sync.Once
	end := func() {
		once.Do(func() {
			c.Close()
			s.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, s)
			p.mu.Unlock()
		})
	}
	go func() { // client → server, stopped while paused
		defer end()
		buf := make([]byte, 32*1024)
		for {
			p.mu.Lock()
			for p.paused && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			n, err := c.Read(buf)
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() { // server → client
		defer end()
		_, _ = io.Copy(c, s)
	}()
}

// Hold makes the proxy refuse (accept and close) new connections.
func (p *faultProxy) Hold(on bool) {
	p.mu.Lock()
	p.hold = on
	p.mu.Unlock()
}

// Pause stops (or resumes) reading from the clients.
func (p *faultProxy) Pause(on bool) {
	p.mu.Lock()
	p.paused = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}
