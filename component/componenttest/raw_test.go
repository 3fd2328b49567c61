package componenttest

import (
	"bufio"
	"strings"
	"testing"
)

func TestSplitStanza(t *testing.T) {
	in := `<?xml version='1.0'?> <iq type='get' id='a>1' to="x"><ping xmlns='urn:xmpp:ping'/></iq>` + "\n " +
		`<message from='a@b' to='c@d'><body>jgb-7 &lt;x&gt;</body><x xmlns='y'><z/></x></message><handshake/></stream:stream>`
	r := bufio.NewReader(strings.NewReader(in))
	want := []string{
		`<iq type='get' id='a>1' to="x"><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<message from='a@b' to='c@d'><body>jgb-7 &lt;x&gt;</body><x xmlns='y'><z/></x></message>`,
		`<handshake/>`,
	}
	for _, w := range want {
		got, err := SplitStanza(r, nil)
		if err != nil || string(got) != w {
			t.Fatalf("SplitStanza = %q, %v; want %q", got, err, w)
		}
	}
	if _, err := SplitStanza(r, nil); err != ErrStreamEnd {
		t.Fatalf("at </stream:stream>: err = %v, want ErrStreamEnd", err)
	}
}

func TestRawAttr(t *testing.T) {
	el := []byte(`<message type='chat' id="m1"` + "\n" + `from='u0@load.localhost/r'><body>jgb-42</body></message>`)
	for name, want := range map[string]string{"type": "chat", "id": "m1", "from": "u0@load.localhost/r", "to": ""} {
		if got := RawAttr(el, name); got != want {
			t.Errorf("RawAttr(%s) = %q, want %q", name, got, want)
		}
	}
}

func TestAppendIQResult(t *testing.T) {
	iq := []byte(`<iq type="get" id='q1' from='u@localhost/r' to='gw.localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	got := string(append(AppendIQResult([]byte("x"), iq), "/>"...))
	if want := "x<iq type='result' id='q1' from='gw.localhost' to='u@localhost/r'/>"; got != want {
		t.Errorf("AppendIQResult = %s, want %s", got, want)
	}
}
