package bridges

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/bridges/store/bolt"
	"github.com/jabbergate/jabbergate/component"
	"github.com/jabbergate/jabbergate/component/stanza"
	"github.com/jabbergate/jabbergate/legacy/echo"
)

// A message or event committed for a user that another took the place of
// meanwhile (a lease taken over in a cluster, a restart) wakes the
// successor's worker, which reads the store: its own first read may have
// come before the commit, and the old user's in-memory tail is read by
// no one.
func TestCommitForReplacedUserWakesSuccessor(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "jg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	nw, _ := echo.New(nil)
	b, err := New(Options{Domain: "gw.localhost", Network: nw, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Link: component.Config{Addr: "127.0.0.1:1", Secret: "s3cret"}}) // never run
	if err != nil {
		t.Fatal(err)
	}
	acct := &store.Account{Bridge: "gw.localhost", JID: "alice@localhost", LegacyID: "echo", Created: time.Now()}
	old, next := b.newUser(acct), b.newUser(acct)
	b.users[acct.JID] = next

	msg := stanza.New(stanza.NSComponent, "message", "id", "m1", "from", "alice@localhost/r", "to", "bob@gw.localhost")
	b.appendRound(context.Background(), []*appendReq{{u: old, e: &outboxEntry{Key: "k1", From: "alice@localhost/r", ID: "m1", To: "bob@gw.localhost", Chat: "bob", Text: "hi", Time: time.Now()}, st: msg}})
	select {
	case <-next.kickOut:
	default:
		t.Error("the successor's outbox worker was not woken")
	}
	if n, err := st.Len(context.Background(), store.Queue{Bridge: "gw.localhost", JID: acct.JID, Kind: store.Outbox}); n != 1 || err != nil {
		t.Fatalf("outbox holds %d (%v)", n, err)
	}

	b.emitRound([]*emitReq{{u: old, e: &inboxEntry{Kind: "msg", ID: "l1", Chat: "bob", Text: "hi", Time: time.Now()}, sid: "s1", payload: []byte(`{"k":"msg","id":"l1","c":"bob","t":"hi"}`)}})
	select {
	case <-next.kickIn:
	default:
		t.Error("the successor's inbox drainer was not woken")
	}
}
