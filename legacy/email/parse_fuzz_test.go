package email

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse: any bytes from an IMAP server become a mail the user can read:
// no panic, no line breaks in the sender or subject, the sender, its name,
// the subject and the file names in UTF-8, attachments within the limit.
// (Invalid UTF-8 or control characters in the text are replaced when the
// stanza is written: component/stanza FuzzSerialize.)
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"From: Bob <bob@example.org>\r\nTo: a@example.org\r\nSubject: =?UTF-8?B?w6lsw6g=?=\r\nMessage-ID: <1@x>\r\n\r\nHello\r\n> quoted\r\n",
		"From: b@x\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<p>caf\xe9</p>\r\n--B--\r\n",
		"From: b@x\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n--Z\r\nContent-Type: text/plain\r\n\r\nhi\r\n--Z\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--Z--\r\n",
		"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n--R\r\n\r\nfailed\r\n--R\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: failed\r\nStatus: 5.1.1\r\n--R--\r\n",
		"Content-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: x-weird\r\n\r\n\xff\xfe",
		"From: =?utf-8?q?B=FFob?= <b@x>\r\nSubject: Gr\xfc\xdfe =?utf-8?q?=FF?=\r\n\r\nhi\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	const maxFile = 1 << 10
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := parse(raw, maxFile)
		if p == nil {
			t.Fatal("parse returned nil")
		}
		if strings.ContainsAny(p.from, "\r\n") || strings.ContainsAny(p.subject, "\r\n") {
			t.Fatalf("header with a line break: %q %q", p.from, p.subject)
		}
		for _, s := range []string{p.from, p.fromName, p.subject, p.replyToText, p.id} {
			if !utf8.ValidString(s) {
				t.Fatalf("header value not in UTF-8: %q", s)
			}
		}
		for _, a := range p.attachments {
			if !utf8.ValidString(a.Name) {
				t.Fatalf("file name not in UTF-8: %q", a.Name)
			}
			if int64(len(a.Data)) > maxFile {
				t.Fatalf("attachment of %d bytes over the %d limit", len(a.Data), maxFile)
			}
		}
	})
}
