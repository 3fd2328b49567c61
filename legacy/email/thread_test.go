package email

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

// sentHeaders sends m and returns the Subject, In-Reply-To and References
// of the mail that went out.
func sentHeaders(t *testing.T, s legacy.Session, sm *smtpServer, m *legacy.Message) (id legacy.MessageID, subject, irt, refs string) {
	t.Helper()
	id, err := s.Send(context.Background(), m)
	if err != nil {
		t.Fatalf("Send %q: %v", m.Text, err)
	}
	_, h := lastSent(t, sm)
	subject, _ = h.Subject()
	return id, subject, h.Get("In-Reply-To"), h.Get("References")
}

// A message with a subject of its own starts a new thread (no
// In-Reply-To, no References); the user's later plain messages in that
// chat continue it ("Re: Topic B", answering the mail that started it),
// corrections (sent by the core as "Correction: …" messages) included,
// also after a restart; a retry of the first mail starts it again; a
// subject of an earlier thread goes back to that thread.
func TestUserSubjectStartsThread(t *testing.T) {
	d := emailtest.StartDovecot(t, testUser)
	sm := startSMTP(t)
	n := testNetwork(t)
	r := runSession(t, n, fields(d.Addr, sm.addr), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, "From: Bob <bob@example.net>\nTo: alice@example.com\nSubject: While password wrong\n"+
		"Message-ID: <m21@example.net>\n\nit still fails\n")
	r.waitIncoming(t, 1)
	r.waitState(t, 1)

	const chat = "bob@example.net"
	// A plain answer continues Bob's thread.
	id0, subj, irt, refs := sentHeaders(t, r.sess, sm, &legacy.Message{Chat: chat, Text: "did you reset it?", Key: "t0"})
	if subj != "Re: While password wrong" || irt != "<m21@example.net>" || refs != "<m21@example.net>" {
		t.Errorf("plain answer: Subject %q, In-Reply-To %q, References %q", subj, irt, refs)
	}
	idB, subj, irt, refs := sentHeaders(t, r.sess, sm, &legacy.Message{Chat: chat, Subject: "Topic B", Text: "first of topic B", Key: "t1"})
	if subj != "Topic B" || irt != "" || refs != "" {
		t.Errorf("new subject: Subject %q, In-Reply-To %q, References %q; want a new thread", subj, irt, refs)
	}
	want := "<" + string(idB) + ">"
	for _, m := range []*legacy.Message{
		{Chat: chat, Text: "second of topic B", Key: "t2"},
		{Chat: chat, Text: "Correction: first of topic B, fixed", Key: "t3"},
		{Chat: chat, Subject: "Re: Topic B", Text: "same subject", Key: "t4"},
	} {
		_, subj, irt, refs = sentHeaders(t, r.sess, sm, m)
		if subj != "Re: Topic B" && subj != m.Subject || irt != want || refs != want {
			t.Errorf("%q: Subject %q, In-Reply-To %q, References %q; want Re: Topic B answering %s", m.Text, subj, irt, refs, want)
		}
	}
	// A retry of the first mail of topic B is the same mail again.
	id, subj, irt, refs := sentHeaders(t, r.sess, sm, &legacy.Message{Chat: chat, Subject: "Topic B", Text: "first of topic B", Key: "t1"})
	if id != idB || subj != "Topic B" || irt != "" || refs != "" {
		t.Errorf("retry: id %s (want %s), Subject %q, In-Reply-To %q, References %q", id, idB, subj, irt, refs)
	}
	// The subject of Bob's thread goes back to it.
	_, subj, irt, _ = sentHeaders(t, r.sess, sm, &legacy.Message{Chat: chat, Subject: "Re: While password wrong", Text: "back", Key: "t5"})
	if subj != "Re: While password wrong" || irt != "<m21@example.net>" {
		t.Errorf("old subject: Subject %q, In-Reply-To %q; want Bob's thread", subj, irt)
	}
	_, subj, irt, _ = sentHeaders(t, r.sess, sm, &legacy.Message{Chat: chat, Subject: "Topic B", Text: "topic B again", Key: "t6"})
	if subj != "Topic B" || irt != want {
		t.Errorf("topic B again: Subject %q, In-Reply-To %q; want %s", subj, irt, want)
	}
	// The threads of sent mail are saved: after a restart, a plain
	// message continues topic B.
	var st []byte
	for _, ev := range r.rec.Events() {
		if ss, ok := ev.(legacy.SaveState); ok {
			st = ss.State
		}
	}
	var saved state
	if err := json.Unmarshal(st, &saved); err != nil || saved.Threads[string(idB)] == nil {
		t.Fatalf("saved state has no thread %s: %s (%v)", idB, st, err)
	}
	r.close(t)
	s2, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Owner: "o", Fields: fields(d.Addr, sm.addr), State: st}, &legacytest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	_, subj, irt, _ = sentHeaders(t, s2, sm, &legacy.Message{Chat: chat, Text: "after restart", Key: "t7"})
	if subj != "Re: Topic B" || irt != want {
		t.Errorf("after restart: Subject %q, In-Reply-To %q; want Re: Topic B answering %s", subj, irt, want)
	}
	// Topic B is the latest thread. A correction of an unknown mail
	// continues it; one of the answer sent in Bob's thread (before the
	// restart) continues Bob's thread.
	_, subj, irt, _ = sentHeaders(t, s2, sm, &legacy.Message{Chat: chat, Text: "Correction: of something", Corrects: "<unknown@example.com>", Key: "t8"})
	if subj != "Re: Topic B" || irt != want {
		t.Errorf("correction of an unknown mail: Subject %q, In-Reply-To %q; want the latest thread, topic B", subj, irt)
	}
	_, subj, irt, _ = sentHeaders(t, s2, sm, &legacy.Message{Chat: chat, Text: "Correction: did you reset it today?", Corrects: id0, Key: "t9"})
	if subj != "Re: While password wrong" || irt != "<m21@example.net>" {
		t.Errorf("correction in Bob's thread: Subject %q, In-Reply-To %q; want Bob's thread", subj, irt)
	}
}
