package telegram

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

// FuzzUpdate feeds arbitrary Bot API update JSON (what getUpdates and the
// webhook hand us) through the inbound path: decoding, translation to
// events (entities with UTF-16 offsets, replies, edits, members, files)
// and emission. It must never panic; every message event names a chat.
// Bot API calls the translation makes (files, photos) get a fast error
// from a local server.
func FuzzUpdate(f *testing.F) {
	for _, s := range []string{
		`{"update_id":1,"message":{"message_id":5,"date":1700000000,"chat":{"id":42,"type":"private","first_name":"Bob"},"from":{"id":42,"first_name":"Bob"},"text":"hi 😀 bold","entities":[{"type":"bold","offset":6,"length":4}]}}`,
		`{"update_id":2,"edited_message":{"message_id":5,"date":1,"edit_date":2,"chat":{"id":42,"type":"private"},"text":"edited"}}`,
		`{"update_id":3,"message":{"message_id":6,"date":1,"chat":{"id":-100,"type":"supergroup","title":"G"},"from":{"id":7},"reply_to_message":{"message_id":5,"date":1,"chat":{"id":-100,"type":"supergroup"},"text":"orig"},"text":"re"}}`,
		`{"update_id":4,"message":{"message_id":7,"date":1,"chat":{"id":42,"type":"private"},"photo":[{"file_id":"p","file_unique_id":"u","width":1,"height":1,"file_size":10}],"caption":"pic"}}`,
		`{"update_id":5,"my_chat_member":{"chat":{"id":42,"type":"private"},"from":{"id":42},"date":1,"old_chat_member":{"status":"member","user":{"id":1}},"new_chat_member":{"status":"kicked","user":{"id":1}}}}`,
		`{"update_id":6,"message":{"message_id":8,"date":1,"chat":{"id":42,"type":"private"},"text":"x","entities":[{"type":"text_link","offset":-5,"length":99999,"url":"http://x"}]}}`,
		`{"update_id":7,"message_reaction":{"chat":{"id":42,"type":"private"},"message_id":5,"date":1,"old_reaction":[],"new_reaction":[{"type":"emoji","emoji":"👍"}]}}`,
	} {
		f.Add([]byte(s))
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"ok":false,"error_code":400,"description":"Bad Request: fuzz"}`))
	}))
	defer api.Close()
	nw, err := New(map[string]string{"api_url": api.URL})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var u Update
		if json.Unmarshal(data, &u) != nil {
			return
		}
		rec := &legacytest.Recorder{}
		ss, err := nw.Open(context.Background(), legacy.Account{ID: "1", Owner: "o", Fields: map[string]string{"token": "1:fuzz"}}, rec)
		if err != nil {
			t.Fatal(err)
		}
		s := ss.(*session)
		s.botID = 1
		if err := s.process(context.Background(), []Update{u}, false); err != nil {
			t.Fatalf("process: %v", err)
		}
		for _, ev := range rec.Events() {
			if m, ok := ev.(legacy.Incoming); ok {
				if m.Chat == "" || m.ID == "" {
					t.Fatalf("message event without chat or id: %+v", m)
				}
				if utf8.ValidString(string(data)) && !utf8.ValidString(m.Text) {
					t.Fatalf("valid update gave invalid UTF-8 text %q", m.Text)
				}
			}
		}
	})
}
