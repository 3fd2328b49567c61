package main

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/component/componenttest"
)

// TestLimitFlushesAnswerFollowedByUnansweredStanza: an iq arriving in the
// same read as a stanza the limit component does not answer (a presence, an
// iq result) is still answered at once, not held in the write buffer until
// more input comes.
func TestLimitFlushesAnswerFollowedByUnansweredStanza(t *testing.T) {
	for _, tail := range []string{
		"<presence from='u@localhost/r' to='limit.localhost'/>",
		"<iq type='result' id='x' from='localhost' to='limit.localhost'/>",
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			nc, err := ln.Accept()
			if err == nil {
				accepted <- nc
			}
		}()
		server, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		nc := <-accepted
		c := &compConn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc)}
		done := make(chan struct{})
		go func() { serveLimit(c, nil); close(done) }()

		if _, err := server.Write([]byte("<iq type='get' id='p1' from='u@localhost/r' to='limit.localhost'><ping xmlns='urn:xmpp:ping'/></iq>" + tail)); err != nil {
			t.Fatal(err)
		}
		server.SetReadDeadline(time.Now().Add(5 * time.Second))
		el, err := componenttest.SplitStanza(bufio.NewReader(server), nil)
		if err != nil {
			t.Fatalf("after %s: no answer to the ping: %v", tail, err)
		}
		if !bytes.Contains(el, []byte("type='result'")) || componenttest.RawAttr(el, "id") != "p1" {
			t.Fatalf("answer = %s", el)
		}
		server.Close()
		<-done
		nc.Close()
	}
}
