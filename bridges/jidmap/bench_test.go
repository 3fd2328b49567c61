package jidmap_test

import (
	"testing"

	"github.com/jabbergate/jabbergate/bridges/jidmap"
	"github.com/jabbergate/jabbergate/legacy"
)

var sinkStr string

func BenchmarkContactJID(b *testing.B) {
	for _, c := range []struct{ name, chat string }{
		{"plain", "hello"},
		{"escaped", "Jane Doe@example.org"},
		{"phone", "+4917012345678"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				j, err := jidmap.ContactJID(legacy.ChatID(c.chat), "echo.localhost")
				if err != nil {
					b.Fatal(err)
				}
				sinkStr = j.Localpart()
			}
		})
	}
}

func BenchmarkLocalpart(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		lp, err := jidmap.Localpart("Jane Doe@example.org", "echo.localhost")
		if err != nil {
			b.Fatal(err)
		}
		sinkStr = lp
	}
}

func BenchmarkChatFromLocalpart(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkStr = string(jidmap.ChatFromLocalpart(`jane\20doe\40example.org`))
	}
}

func BenchmarkStanzaID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkStr = jidmap.StanzaID("echo.localhost", "abcdefghijklmnop", "echo-0123456789abcdef0123456789abcdef")
	}
}

func BenchmarkOwnerKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkStr = jidmap.OwnerKey("echo.localhost", "alice@localhost")
	}
}
