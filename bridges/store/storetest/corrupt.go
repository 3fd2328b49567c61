package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jabbergate/jabbergate/bridges/store"
)

// CorruptAccount checks a store's handling of one account record that
// does not decode. corrupt overwrites the stored account record of
// (bridge, jid) in st with bytes that are not a record and returns a part
// of the record's key or location the error must name.
//
// ListAccounts returns the other accounts with a *store.CorruptAccountsError
// naming the record; GetAccount returns a *store.CorruptRecordError; both
// wrap store.ErrCorrupt; neither removes the record, which DeleteAccount
// does.
func CorruptAccount(t *testing.T, st store.Store, corrupt func(bridge, jid string) (key string)) {
	t.Helper()
	ctx := context.Background()
	const bridge = "corrupt.example"
	jids := []string{"a@example.org", "b@example.org", "c@example.org"}
	for _, j := range jids {
		if err := st.PutAccount(ctx, &store.Account{Bridge: bridge, JID: j, LegacyID: "id-" + j}); err != nil {
			t.Fatal(err)
		}
	}
	key := corrupt(bridge, jids[1])

	for range 2 { // reading twice: the record is still there
		as, err := st.ListAccounts(ctx, bridge)
		var ce *store.CorruptAccountsError
		if !errors.As(err, &ce) || !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("ListAccounts: %v, want a *store.CorruptAccountsError", err)
		}
		if len(ce.Records) != 1 || ce.Records[0].JID != jids[1] || ce.Records[0].Bridge != bridge || !strings.Contains(ce.Records[0].Key, key) {
			t.Errorf("ListAccounts: corrupt records %+v, want one of %s at %q", ce.Records, jids[1], key)
		}
		if !strings.Contains(err.Error(), jids[1]) || !strings.Contains(err.Error(), bridge) {
			t.Errorf("ListAccounts error %q names neither the JID nor the bridge", err)
		}
		var got []string
		for _, a := range as {
			got = append(got, a.JID)
		}
		if strings.Join(got, " ") != jids[0]+" "+jids[2] {
			t.Errorf("ListAccounts returned %q with the error, want the two others", got)
		}
	}
	_, err := st.GetAccount(ctx, bridge, jids[1])
	var re *store.CorruptRecordError
	if !errors.As(err, &re) || !errors.Is(err, store.ErrCorrupt) || re.JID != jids[1] || !strings.Contains(err.Error(), key) {
		t.Errorf("GetAccount of the corrupt record: %v, want a *store.CorruptRecordError naming %q", err, key)
	}
	if _, err := st.GetAccount(ctx, bridge, jids[0]); err != nil {
		t.Errorf("GetAccount of another: %v", err)
	}

	if err := st.DeleteAccount(ctx, bridge, jids[1]); err != nil {
		t.Fatalf("DeleteAccount of the corrupt record: %v", err)
	}
	if as, err := st.ListAccounts(ctx, bridge); err != nil || len(as) != 2 {
		t.Errorf("ListAccounts after DeleteAccount: %d, %v", len(as), err)
	}
}
