package email

import (
	"context"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

func TestDovecot(t *testing.T) {
	d := emailtest.StartDovecot(t, testUser)
	sm := startSMTP(t)
	n := testNetwork(t)
	f := fields(d.Addr, sm.addr)
	if _, err := n.Register(context.Background(), f); err != nil {
		t.Fatalf("Register: %v", err)
	}
	d.Deliver(t, simpleMail("old@example.org", "old", "dv0@x", "before the first session"))

	r := runSession(t, n, f, nil)
	r.waitState(t, 1)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, "From: =?iso-8859-1?q?Jos=E9?= <jose@example.org>\nSubject: =?utf-8?q?D=C3=A9j=C3=A0?=\nMessage-ID: <dv1@x>\n"+
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nol\xe9\n")
	in := r.waitIncoming(t, 1) // IDLE wakes the session: idleRefresh is an hour
	if len(in) != 1 || in[0].ID != "dv1@x" || in[0].Chat != "jose@example.org" || in[0].Subject != "Déjà" || in[0].Text != "olé" {
		t.Errorf("incoming = %+v", in)
	}
	st := r.waitState(t, 2)
	r.close(t)

	// Restart: nothing twice, nothing skipped.
	d.Deliver(t, simpleMail("bob@example.org", "2", "dv2@x", "two"))
	r2 := runSession(t, n, f, st)
	r2.waitIncoming(t, 1)
	r2.waitState(t, 3)
	if in := incomings(r2.rec); len(in) != 1 || in[0].ID != "dv2@x" {
		t.Errorf("after restart got %+v, want dv2 only", in)
	}
}
