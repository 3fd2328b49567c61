package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/jabbergate/jabbergate/component/componenttest"
)

// runLimit is `jgbench limit`: the minimal component that bounds what any
// component can do on this server. iq get/set → empty result (disco#info →
// one identity, or the -disco-query given), message → the same body back
// to the sender (serveLimit).
func runLimit(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("limit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server component listener host:port")
	domain := fs.String("domain", "limit.localhost", "component domain")
	secret := fs.String("secret", "", "component secret")
	queryFile := fs.String("disco-query", "", "file holding the <query/> to answer disco#info with (default: one identity)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	discoQuery := []byte("<query xmlns='http://jabber.org/protocol/disco#info'><identity category='gateway' type='xmpp' name='limit'/></query>")
	if *queryFile != "" {
		q, err := os.ReadFile(*queryFile)
		if err != nil {
			fmt.Fprintf(stderr, "jgbench limit: %v\n", err)
			return 2
		}
		discoQuery = q
	}
	c, err := dialComponent(*addr, *domain, *secret)
	if err != nil {
		fmt.Fprintf(stderr, "jgbench limit: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "jgbench limit: connected")
	serveLimit(c, discoQuery)
	return 0
}

// serveLimit answers what c receives until the stream ends. Answers are
// written unflushed while more input is buffered, and flushed whenever the
// input buffer runs dry after any stanza — answered or not — so that an
// answer is never held back while the reader waits for input (an iq
// followed by a presence in one read must still get its result).
func serveLimit(c *compConn, discoQuery []byte) {
	var buf, out []byte
	var err error
	for {
		if buf, err = componenttest.SplitStanza(c.r, buf[:0]); err != nil {
			return
		}
		out = limitAnswer(buf, out[:0], discoQuery)
		if len(out) > 0 {
			if err := c.write(out, false); err != nil {
				return
			}
		}
		if c.r.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return
			}
		}
	}
}

// limitAnswer appends the limit component's answer to el to out: an empty
// result to an iq get/set (disco#info: discoQuery), the same body back to
// a message, nothing to anything else.
func limitAnswer(el, out, discoQuery []byte) []byte {
	switch {
	case bytes.HasPrefix(el, []byte("<iq")):
		t := componenttest.RawAttr(el, "type")
		if t != "get" && t != "set" {
			return out
		}
		out = componenttest.AppendIQResult(out, el)
		if bytes.Contains(el, []byte("disco#info")) {
			out = append(out, '>')
			out = append(out, discoQuery...)
			out = append(out, "</iq>"...)
		} else {
			out = append(out, "/>"...)
		}
	case bytes.HasPrefix(el, []byte("<message")):
		out = append(out, "<message type='chat' from='"...)
		out = append(out, componenttest.RawAttr(el, "to")...)
		out = append(out, "' to='"...)
		out = append(out, componenttest.RawAttr(el, "from")...)
		out = append(out, "'><body>"...)
		out = append(out, body(el)...)
		out = append(out, "</body></message>"...)
	}
	return out
}
