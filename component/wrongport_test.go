package component

import (
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/component/servertest"
)

// What Prosody 0.12 answers the link's stream header for echo.localhost
// (captured on loopback): its client port (mod_c2s) serves no such host
// for clients, its component port (mod_component) has no such component.
const (
	prosodyC2SAnswer = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' from='echo.localhost' id='97be693d-3b1f-4ab2-88ce-e42d68a4b4da' xml:lang='en'>" +
		"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>This server does not serve echo.localhost</text></stream:error></stream:stream>"
	prosodyComponentAnswer = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id=''>" +
		"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>echo.localhost does not match any configured external components</text></stream:error></stream:stream>"
)

const (
	meaningClientPort  = "the server's client (c2s) port"
	meaningNoComponent = "the server has no component configured for this domain"
)

// TestHostUnknownMeaning: host-unknown from a client port (Prosody's c2s
// answers a stream to a component's domain so, and names itself
// jabber:client) means the address is the wrong port; from the component
// port it means the component is missing. Read from the exact bytes each
// Prosody port sends.
func TestHostUnknownMeaning(t *testing.T) {
	for name, tc := range map[string]struct{ answer, want string }{
		"prosody c2s port":       {prosodyC2SAnswer, meaningClientPort},
		"prosody component port": {prosodyComponentAnswer, meaningNoComponent},
		// The text alone, should a client port name no namespace.
		"c2s text only": {strings.Replace(prosodyC2SAnswer, " xmlns='jabber:client'", "", 1), meaningClientPort},
		// The namespace alone, whatever the text.
		"client namespace only": {strings.Replace(prosodyC2SAnswer, "This server does not serve", "Unknown host", 1), meaningClientPort},
	} {
		t.Run(name, func(t *testing.T) {
			r := newReader(strings.NewReader(tc.answer), 4096)
			if _, err := r.next(); err != nil {
				t.Fatalf("header: %v", err)
			}
			tok, err := r.next()
			if err != nil {
				t.Fatal(err)
			}
			el, err := r.element(tok.(xml.StartElement))
			if err != nil {
				t.Fatal(err)
			}
			se := parseStreamError(el, testDomain, r.dec.HeaderNS())
			if se.Condition != "host-unknown" || !strings.Contains(se.Meaning(), tc.want) {
				t.Errorf("%s: meaning %q, want it to say %q", se.Condition, se.Meaning(), tc.want)
			}
		})
	}
	// Built by hand, without a stream header: the text decides.
	if m := (&StreamError{Condition: "host-unknown", Text: "This server does not serve echo.localhost"}).Meaning(); !strings.Contains(m, meaningClientPort) {
		t.Errorf("meaning of Prosody's c2s text = %q", m)
	}
	if m := (&StreamError{Condition: "host-unknown"}).Meaning(); m != meaningNoComponent {
		t.Errorf("meaning of a bare host-unknown = %q", m)
	}
}

// TestProsodyWrongPort: against a real Prosody with the component
// configured, a link pointed at the client port logs host-unknown with the
// wrong-port meaning; a link for a domain Prosody has no component for, on
// the component port, logs that the component is missing.
func TestProsodyWrongPort(t *testing.T) {
	s := servertest.StartProsody(t, servertest.Options{Components: map[string]string{testDomain: testSecret}})
	for name, tc := range map[string]struct{ addr, domain, want string }{
		"client port":                  {s.C2SAddr, testDomain, meaningClientPort},
		"component port, no component": {s.ComponentAddr, "nobody.localhost", meaningNoComponent},
	} {
		t.Run(name, func(t *testing.T) {
			logs := &logBuf{}
			cfg := Config{Addr: tc.addr, Domain: tc.domain, Secret: testSecret, DialTimeout: waitLong,
				Logger: slog.New(slog.NewTextHandler(logs, nil))}
			l, err := New(cfg, newRecorder())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("link log:\n%s", logs.String())
				}
			})
			stop := runLink(t, l)
			logs.waitFor(t, "condition=host-unknown", tc.want)
			stop()
		})
	}
}
