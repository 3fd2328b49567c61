package main

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
		got, err := splitStanza(r, nil)
		if err != nil || string(got) != w {
			t.Fatalf("splitStanza = %q, %v; want %q", got, err, w)
		}
	}
	if _, err := splitStanza(r, nil); err != errStreamEnd {
		t.Fatalf("at </stream:stream>: err = %v, want errStreamEnd", err)
	}
}

func TestAttrAndBody(t *testing.T) {
	el := []byte(`<message type='chat' id="m1" from='u0@load.localhost/r'><body>jgb-42</body></message>`)
	for name, want := range map[string]string{"type": "chat", "id": "m1", "from": "u0@load.localhost/r", "to": ""} {
		if got := attr(el, name); got != want {
			t.Errorf("attr(%s) = %q, want %q", name, got, want)
		}
	}
	if got := body(el); got != "jgb-42" {
		t.Errorf("body = %q", got)
	}
}

func TestLoadResultPercentiles(t *testing.T) {
	var r loadResult
	for i := 1; i <= 1000; i++ {
		r.Lat = append(r.Lat, 1000*1000*1) // 1 ms each
	}
	if r.pct(0.5) != 1000 || r.pct(0.999) != 1000 {
		t.Fatalf("pct = %v %v", r.pct(0.5), r.pct(0.999))
	}
}
