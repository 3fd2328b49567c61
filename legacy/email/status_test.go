package email

import (
	"net"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

// statusTexts are the texts of the session's status events of kind st.
func statusTexts(rec *legacytest.Recorder, st legacy.Status) []string {
	var out []string
	for _, ev := range rec.Events() {
		if s, ok := ev.(legacy.StatusEvent); ok && s.Status == st {
			out = append(out, s.Text)
		}
	}
	return out
}

// goChain reports whether a user-visible text shows a Go error chain.
func goChain(s string) bool {
	for _, w := range []string{"email:", "legacy:", "dial tcp", "imap:", "write tcp", "read tcp", "use of closed"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// The session's status texts (the gateway's presence status, the
// login-failed notice) are short and human; the error chain stays in the
// error (the log).
func TestStatusTextsAreHuman(t *testing.T) {
	// Nothing listens: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	r := runSession(t, testNetwork(t), fields(closed, ""), nil)
	waitStatus(t, r.rec, legacy.StatusDisconnected)
	r.close(t)
	if got := statusTexts(r.rec, legacy.StatusDisconnected)[0]; got != "cannot reach the IMAP server "+closed+" (connection refused)" {
		t.Errorf("refused: %q", got)
	}

	// A wrong password: the status says so; Run's error keeps the chain.
	rec, err := runWithPassword(t, "wrong")
	if !isErr(err, legacy.ErrUnauthorized) || !strings.Contains(err.Error(), "email: the IMAP server rejected") {
		t.Errorf("Run = %v, want ErrUnauthorized with its chain", err)
	}
	if got := statusTexts(rec, legacy.StatusUnauthorized); len(got) != 1 || got[0] != "the IMAP server rejected the username or password" {
		t.Errorf("unauthorized: %q", got)
	}

	// The connection drops (a real Dovecot behind a proxy that cuts it).
	d := emailtest.StartDovecot(t, testUser)
	px := startDropProxy(t, d.Addr)
	r = runSession(t, testNetwork(t), fields(px.addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, simpleMail("bob@example.org", "s", "s1@x", "after the drop"))
	r.waitIncoming(t, 1)
	got := statusTexts(r.rec, legacy.StatusDisconnected)
	if len(got) == 0 || got[0] != "the connection to the IMAP server was lost; reconnecting" {
		t.Errorf("dropped: %q", got)
	}
	for _, st := range []legacy.Status{legacy.StatusDisconnected, legacy.StatusUnauthorized} {
		for _, txt := range append(statusTexts(r.rec, st), statusTexts(rec, st)...) {
			if goChain(txt) {
				t.Errorf("status %s shows an error chain: %q", st, txt)
			}
		}
	}
}
