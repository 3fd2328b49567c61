package record

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/bridges/store"
)

func TestAccountRoundTrip(t *testing.T) {
	for _, a := range []*store.Account{
		{},
		{Bridge: "telegram.example", JID: "u@example.org"},
		{
			Bridge: "b{x}:|\\", JID: "ü@例え.jp", LegacyID: "\xff\x00bad utf8",
			Fields:       map[string]string{"token": "sealed\x00\xfe", "": ""},
			Settings:     map[string]string{"lang": "de"},
			State:        []byte{0, 1, 2, 0xff},
			Created:      time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.FixedZone("x", 3600)),
			Subscription: "both",
		},
	} {
		b, err := EncodeAccount(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAccount(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Bridge != a.Bridge || got.JID != a.JID || got.LegacyID != a.LegacyID ||
			!maps.Equal(got.Fields, a.Fields) || !maps.Equal(got.Settings, a.Settings) ||
			!bytes.Equal(got.State, a.State) || !got.Created.Equal(a.Created) ||
			got.Subscription != a.Subscription {
			t.Errorf("round trip: got %+v, want %+v", got, a)
		}
	}
}

func TestContactRoundTrip(t *testing.T) {
	c := &store.Contact{Localpart: "a\\40b", LegacyID: "\xff", Name: "Zoë", Subscription: "to"}
	b, _ := EncodeContact(c)
	got, err := DecodeContact(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *c {
		t.Errorf("got %+v, want %+v", got, c)
	}
}

func TestContactGroupFlag(t *testing.T) {
	c := &store.Contact{Localpart: "-100200", LegacyID: "-100200", Name: "Friends", Group: true}
	b, _ := EncodeContact(c)
	got, err := DecodeContact(b)
	if err != nil || *got != *c {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	// A record written before the flags existed ends after the
	// subscription: not a group.
	c.Group = false
	old, _ := EncodeContact(c)
	got, err = DecodeContact(old[:len(old)-1])
	if err != nil || *got != *c {
		t.Errorf("record without flags: got %+v, %v; want %+v", got, err, c)
	}
}

func TestContactUnavailable(t *testing.T) {
	for _, c := range []*store.Contact{
		{Localpart: "42", LegacyID: "42", Name: "Bob", Subscription: "both", Unavailable: true, UnavailableStatus: "blocked your bot"},
		{Localpart: "42", LegacyID: "42", Unavailable: true},
		{Localpart: "42", LegacyID: "42", Group: true},
	} {
		b, _ := EncodeContact(c)
		got, err := DecodeContact(b)
		if err != nil || *got != *c {
			t.Errorf("got %+v, %v; want %+v", got, err, c)
		}
	}
}

func TestCorrupt(t *testing.T) {
	a := &store.Account{Bridge: "b", JID: "j", Fields: map[string]string{"k": "v"}}
	b, _ := EncodeAccount(a)
	for i := range len(b) - 1 {
		// Any strict prefix that cuts a length-prefixed field must fail, and
		// nothing may panic.
		_, _ = DecodeAccount(b[:i])
	}
	if _, err := DecodeAccount(nil); err == nil {
		t.Error("DecodeAccount(nil): no error")
	}
	if _, err := DecodeContact([]byte{9}); err == nil {
		t.Error("DecodeContact(version 9): no error")
	}
	if _, err := DecodeAccount([]byte{accountV1, 0xff}); err == nil {
		t.Error("DecodeAccount(bad varint): no error")
	}
}

func FuzzDecodeAccount(f *testing.F) {
	b, _ := EncodeAccount(&store.Account{Bridge: "b", JID: "j", State: []byte("s")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeAccount(b)
		_, _ = DecodeContact(b)
	})
}
