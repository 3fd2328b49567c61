package bridges_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
	"github.com/jabbergate/jabbergate/component/stanza"
	bbolt "go.etcd.io/bbolt"
)

// TestCorruptAccountSkipped: one account record that does not decode no
// longer stops the bridge: the other users start and are served, the
// record is logged at error level with its location, and it is left as
// it is — a registration of that user is refused rather than replacing it.
func TestCorruptAccountSkipped(t *testing.T) {
	const bob = "bob@localhost"
	h := newHarness(t, nil)
	h.register(alice)
	h.register(bob)
	h.stop()

	db, err := bbolt.Open(h.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte("garbage")
	if err := db.Update(func(tx *bbolt.Tx) error {
		u := tx.Bucket([]byte("bridges")).Bucket([]byte("b" + domain)).Bucket([]byte("u" + bob))
		return u.Put([]byte("account"), garbage)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	h.start(nil)
	h.send(`<message xmlns='jabber:component:accept' type='chat' id='m1' from='` + alice + `/p' to='hello@` + domain + `'><body>still served</body></message>`)
	h.expect("alice's echo", func(e *stanza.Element) bool { return e.ChildText("", "body") == "still served" })
	logs := h.log.String()
	if !strings.Contains(logs, "level=ERROR msg=\"account record cannot be read") || !strings.Contains(logs, `record="bucket path`) || !strings.Contains(logs, "u"+bob) {
		t.Errorf("log:\n%s\nwant an error naming bob's record", logs)
	}
	if !strings.Contains(logs, "msg=\"bridge started\"") || !strings.Contains(logs, "users=1") {
		t.Errorf("log:\n%s\nwant the bridge started with alice", logs)
	}

	r := h.iq(bob+"/res", domain, "set", `<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>jabber:iq:register</value></field></x></query>`)
	if r.Type() != "error" || !strings.Contains(r.String(), "your stored registration is damaged") {
		t.Errorf("bob registering again: %s", r)
	}
	_, err = h.st.GetAccount(context.Background(), domain, bob)
	var re *store.CorruptRecordError
	if !errors.As(err, &re) {
		t.Errorf("bob's record after his registration: %v, want it left corrupt", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(h.log.String(), `msg="account record cannot be read`); n != 1 {
		t.Errorf("the corrupt record was logged %d times", n)
	}
}
