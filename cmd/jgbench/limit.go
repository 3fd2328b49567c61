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
// to the sender; replies are flushed when no input is buffered.
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
	var buf, out []byte
	for {
		if buf, err = componenttest.SplitStanza(c.r, buf[:0]); err != nil {
			return 0
		}
		out = out[:0]
		switch {
		case bytes.HasPrefix(buf, []byte("<iq")):
			t := componenttest.RawAttr(buf, "type")
			if t != "get" && t != "set" {
				continue
			}
			out = append(out, "<iq type='result' id='"...)
			out = append(out, componenttest.RawAttr(buf, "id")...)
			out = append(out, "' from='"...)
			out = append(out, componenttest.RawAttr(buf, "to")...)
			out = append(out, "' to='"...)
			out = append(out, componenttest.RawAttr(buf, "from")...)
			if bytes.Contains(buf, []byte("disco#info")) {
				out = append(out, "'>"...)
				out = append(out, discoQuery...)
				out = append(out, "</iq>"...)
			} else {
				out = append(out, "'/>"...)
			}
		case bytes.HasPrefix(buf, []byte("<message")):
			out = append(out, "<message type='chat' from='"...)
			out = append(out, componenttest.RawAttr(buf, "to")...)
			out = append(out, "' to='"...)
			out = append(out, componenttest.RawAttr(buf, "from")...)
			out = append(out, "'><body>"...)
			out = append(out, body(buf)...)
			out = append(out, "</body></message>"...)
		default:
			continue
		}
		if err := c.write(out, c.r.Buffered() == 0); err != nil {
			return 0
		}
	}
}
