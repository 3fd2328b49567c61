package email

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jabbergate/jabbergate/legacy"
)

func TestParseHTMLOnly(t *testing.T) {
	p := parse([]byte(crlf("From: Bob <bob@example.org>\nSubject: hi\nMIME-Version: 1.0\n"+
		"Content-Type: text/html; charset=utf-8\n\n<html><head><style>p{}</style></head><body><p>Hello <b>there</b></p><ul><li>one</li><li>two</li></ul></body></html>\n")), 1<<20)
	if !strings.Contains(p.text, "Hello there") || !strings.Contains(p.text, "one") || strings.Contains(p.text, "<") || strings.Contains(p.text, "p{}") {
		t.Errorf("text = %q", p.text)
	}
}

func TestParsePrefersPlain(t *testing.T) {
	p := parse([]byte(crlf("From: bob@example.org\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n"+
		"--b\nContent-Type: text/html\n\n<p>html version</p>\n--b\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nplain vers=E9ion\n--b--\n")), 1<<20)
	if p.text != "plain verséion" {
		t.Errorf("text = %q", p.text)
	}
}

func TestTrimQuote(t *testing.T) {
	for in, want := range map[string]string{
		"Sure.\n\nOn Mon, Nov 23, 2026 at 10:00 Bob <b@x> wrote:\n> question?\n> \n":  "Sure.",
		"Sure.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n\nquestion?\n": "Sure.",
		"Sure.\n> trailing quote\n>> deeper\n":                                        "Sure.",
		"> q1\nanswer 1\n> q2\nanswer 2\n":                                            "> q1\nanswer 1\n> q2\nanswer 2",
		"Body\n-- \nBob\nPhone 123\n":                                                 "Body",
		"> only a quote\n":                                                            "> only a quote",
		"Le lun. 23 nov. 2026, Bob a écrit :\n> x\n":                                  "Le lun. 23 nov. 2026, Bob a écrit :\n> x",
		"Text before\nLe lun. 23 nov. 2026, Bob a écrit :\n> x\n":                     "Text before",
		"I wrote: this is not an attribution because text follows\nmore text\n":       "I wrote: this is not an attribution because text follows\nmore text",
		"On Monday we meet. Bob wrote:\nno quote after\n":                             "On Monday we meet. Bob wrote:\nno quote after",
	} {
		if got := trimQuote(in); got != want {
			t.Errorf("trimQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBrokenMIME(t *testing.T) {
	// A multipart without its closing boundary and a part with a bad header.
	p := parse([]byte(crlf("From: Bob <bob@example.org>\nSubject: broken\nMessage-ID: <br@x>\nMIME-Version: 1.0\n"+
		"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\n\nfirst part\n--zz\nBad header line without colon\n\nrest\n")), 1<<20)
	if p.from != "bob@example.org" || p.subject != "broken" || !strings.Contains(p.text, "first part") {
		t.Errorf("parsed = %+v", p)
	}
	// A header that is not a header at all.
	p = parse([]byte("this is not a mail\x00\xff\r\n\r\nbody"), 1<<20)
	if !strings.Contains(p.text, "could not be read") {
		t.Errorf("text = %q, want a notice", p.text)
	}
}

func TestParseUnknownCharset(t *testing.T) {
	p := parse([]byte(crlf("From: =?x-unknown?q?B=F6b?= <bob@example.org>\nSubject: =?x-unknown?q?S=FCbject?=\nMIME-Version: 1.0\n"+
		"Content-Type: text/plain; charset=x-unknown\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe\n")), 1<<20)
	if p.from != "bob@example.org" {
		t.Errorf("from = %q", p.from)
	}
	if !strings.HasPrefix(p.text, "Grüße") || !strings.Contains(p.text, "charset the gateway does not know") {
		t.Errorf("text = %q, want a Latin-1 decoding and a note", p.text)
	}
	if p.subject == "" {
		t.Errorf("subject lost")
	}
}

// Text labelled ISO-8859-1 or US-ASCII, or not labelled, is read as
// Windows-1252 (WHATWG): the quotes, € and dashes of 0x80–0x9F survive,
// in the body and in RFC 2047 words.
func TestParseWindows1252(t *testing.T) {
	for _, c := range []struct{ name, hdr, body string }{
		{"iso-8859-1 quoted-printable", "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable", "=93Hi=94 5=80 =96 ok"},
		{"latin1 8bit", "Content-Type: text/plain; charset=latin1\nContent-Transfer-Encoding: 8bit", "\x93Hi\x94 5\x80 \x96 ok"},
		{"us-ascii 8bit", "Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit", "\x93Hi\x94 5\x80 \x96 ok"},
		{"no charset", "Content-Type: text/plain", "\x93Hi\x94 5\x80 \x96 ok"},
	} {
		p := parse([]byte(crlf("From: =?ISO-8859-1?Q?=93Bob=94?= <bob@example.org>\nSubject: =?iso-8859-1?q?=93Hi=94_5=80?= =?us-ascii?Q?=96_ok?=\n"+
			"MIME-Version: 1.0\n"+c.hdr+"\n\n"+c.body+"\n")), 1<<20)
		if p.text != "“Hi” 5€ – ok" || p.subject != "“Hi” 5€– ok" || p.fromName != "“Bob”" {
			t.Errorf("%s: text %q, subject %q, name %q", c.name, p.text, p.subject, p.fromName)
		}
	}
}

// Raw 8-bit header fields (not RFC 2047) are read as Windows-1252: the
// sender's name and the subject are readable, and no invalid UTF-8 goes
// on; a header in raw UTF-8 (RFC 6532) stays as it is.
func TestParse8BitHeaders(t *testing.T) {
	p := parse([]byte(crlf("From: J\xf6rg \x93JM\x94 <j@example.org>\nSubject: Gr\xfc\xdfe \x80\nMessage-ID: <a\xe9@example.org>\n"+
		"Content-Type: text/plain; charset=iso-8859-1\n\nhi \xe9\n")), 1<<20)
	if p.from != "j@example.org" || p.fromName != "Jörg “JM”" || p.subject != "Grüße €" || p.text != "hi é" || !utf8.ValidString(p.id) {
		t.Errorf("from %q name %q subject %q text %q id %q", p.from, p.fromName, p.subject, p.text, p.id)
	}
	p = parse([]byte(crlf("From: Jörg <jörg@example.org>\nSubject: Grüße\n\nhi\n")), 1<<20)
	if p.from != "jörg@example.org" || p.fromName != "Jörg" || p.subject != "Grüße" {
		t.Errorf("UTF-8 header: from %q name %q subject %q", p.from, p.fromName, p.subject)
	}
}

func TestParseAutomated(t *testing.T) {
	for _, c := range []struct{ hdr, want string }{
		{"Auto-Submitted: auto-replied", "automatic"},
		{"Auto-Submitted: no", ""},
		{"List-Id: <dev.lists.example.org>", "list"},
		{"Precedence: bulk", "list"},
		{"X-Autoreply: yes", "automatic"},
		{"Precedence: auto_reply", "automatic"},
		{"X-Auto-Response-Suppress: All", ""}, // Outlook sets it on ordinary mail too
	} {
		p := parse([]byte(crlf("From: bob@example.org\n"+c.hdr+"\n\nbody\n")), 1<<20)
		if p.automated != c.want {
			t.Errorf("%s: automated = %q, want %q", c.hdr, p.automated, c.want)
		}
	}
}

func TestAutomatedSetting(t *testing.T) {
	im := startIMAP(t, true)
	n := testNetwork(t)
	for _, setting := range []string{"deliver", "skip"} {
		t.Run(setting, func(t *testing.T) {
			r := runSessionSettings(t, n, fields(im.addr, ""), map[string]string{"automated": setting})
			r.waitState(t, 0)
			waitStatus(t, r.rec, legacy.StatusConnected)
			im.deliver(t, "From: vacation@example.org\nAuto-Submitted: auto-replied\nMessage-ID: <auto-"+setting+"@x>\n\nI am away\n", time.Time{})
			im.deliver(t, simpleMail("bob@example.org", "human", "human-"+setting+"@x", "hello"), time.Time{})
			in := r.waitIncoming(t, 1)
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				in = incomings(r.rec)
				if in[len(in)-1].ID == legacy.MessageID("human-"+setting+"@x") {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			var ids []string
			for _, m := range in {
				ids = append(ids, string(m.ID))
				if m.ID == legacy.MessageID("auto-"+setting+"@x") && !strings.HasPrefix(m.Text, "[automatic] ") {
					t.Errorf("automatic mail not tagged: %q", m.Text)
				}
			}
			want := "auto-deliver@x,human-deliver@x"
			if setting == "skip" {
				want = "human-skip@x"
			}
			if strings.Join(ids, ",") != want {
				t.Errorf("ids = %v, want %s", ids, want)
			}
		})
	}
}

const dsn = `From: MAILER-DAEMON@mx.example.org
To: alice@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce1@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Original-Envelope-Id: jg.abc

Final-Recipient: rfc822; Nobody@Example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: Recipient address rejected

--B
Content-Type: text/rfc822-headers

From: alice@example.com
To: nobody@example.org
Subject: hello
Message-ID: <jg.abc@example.com>

--B--
`

func TestParseBounce(t *testing.T) {
	p := parse([]byte(crlf(dsn)), 1<<20)
	if p.bounce == nil {
		t.Fatal("bounce not recognised")
	}
	if p.from != "nobody@example.org" || p.bounce.original != "jg.abc@example.com" || p.automated != "" ||
		!strings.Contains(p.text, "could not be delivered") || !strings.Contains(p.text, "5.1.1") || !strings.Contains(p.text, "Recipient address rejected") {
		t.Errorf("parsed = %+v, text %q", p, p.text)
	}
}

// An internationalised bounce (RFC 6533) is a bounce too: its status in
// message/global-delivery-status, the returned header in
// message/global-headers, with either report-type.
func TestParseGlobalBounce(t *testing.T) {
	global := strings.NewReplacer("message/delivery-status", "message/global-delivery-status",
		"text/rfc822-headers", "message/global-headers", "Nobody@Example.org", "Jörg@Example.org").Replace(dsn)
	for _, raw := range []string{global, strings.Replace(global, "report-type=delivery-status", "report-type=global-delivery-status", 1)} {
		p := parse([]byte(crlf(raw)), 1<<20)
		if p.bounce == nil || p.bounce.status != "5.1.1" || p.bounce.original != "jg.abc@example.com" || p.from != "jörg@example.org" ||
			len(p.attachments) != 0 || !strings.Contains(p.text, "could not be delivered") {
			t.Errorf("bounce = %+v, from %q, text %q, files %d", p.bounce, p.from, p.text, len(p.attachments))
		}
	}
}

func TestParseAttachments(t *testing.T) {
	raw := crlf("From: bob@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n" +
		"--m\nContent-Type: text/plain\n\nsee attached\n" +
		"--m\nContent-Type: image/png\nContent-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9.png\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n" +
		"--m\nContent-Type: image/gif; name=inline.gif\nContent-Disposition: inline\nContent-ID: <c1>\nContent-Transfer-Encoding: base64\n\nR0lGODlh\n" +
		"--m\nContent-Type: application/zip\nContent-Disposition: attachment; filename=big.zip\n\n" + strings.Repeat("x", 100) + "\n--m--\n")
	p := parse([]byte(raw), 50)
	if p.text == "" || !strings.HasPrefix(p.text, "see attached") || !strings.Contains(p.text, "big.zip") {
		t.Errorf("text = %q", p.text)
	}
	if len(p.attachments) != 2 || p.attachments[0].Name != "été.png" || string(p.attachments[0].Data) != "hello" || p.attachments[0].Type != "image/png" ||
		p.attachments[1].Name != "inline.gif" || string(p.attachments[1].Data) != "GIF89a" {
		t.Errorf("attachments = %+v", p.attachments)
	}
}

// Every text part of the body is kept, in order (Apple Mail splits the
// text around an inline image); a text part with a file name, or text
// that is neither plain nor HTML (a patch, an invitation), is a file.
func TestParseTextParts(t *testing.T) {
	p := parse([]byte(crlf("From: bob@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n"+
		"--m\nContent-Type: text/plain\n\nPart one\n\n"+
		"--m\nContent-Type: image/jpeg; name=p.jpg\nContent-Disposition: inline; filename=p.jpg\nContent-Transfer-Encoding: base64\n\n/9j/\n"+
		"--m\nContent-Type: text/plain; charset=utf-8\n\nPart two, after the image\n"+
		"--m\nContent-Type: text/plain; name=notes.txt\nContent-Disposition: inline; filename=notes.txt\n\nNOTES\n"+
		"--m\nContent-Type: text/x-patch; name=fix.patch\nContent-Disposition: inline; filename=fix.patch\n\ndiff --git a/x b/x\n"+
		"--m\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\n\nBEGIN:VCALENDAR\n"+
		"--m\nContent-Type: text/plain\n\n-- \nBob\n--m--\n")), 1<<20)
	if p.text != "Part one\n\nPart two, after the image" {
		t.Errorf("text = %q", p.text)
	}
	var files []string
	for _, a := range p.attachments {
		files = append(files, a.Name+" "+a.Type+" "+strings.TrimSpace(string(a.Data)))
	}
	want := []string{"p.jpg image/jpeg \xff\xd8\xff", "notes.txt text/plain NOTES", "fix.patch text/x-patch diff --git a/x b/x", "attachment-4.ics text/calendar BEGIN:VCALENDAR"}
	if strings.Join(files, "|") != strings.Join(want, "|") {
		t.Errorf("files %q, want %q", files, want)
	}
}

// A text longer than the gateway reads (max_file_size, at least 1 MiB)
// is cut with a note, and a cut in the middle of a UTF-8 character does
// not turn the whole text into Latin-1.
func TestParseLongTextCut(t *testing.T) {
	mail := func(body string) []byte {
		return []byte(crlf("From: bob@example.org\nSubject: long\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body))
	}
	for _, x := range []string{"", "x"} { // "x": 1 MiB cuts an é in two
		p := parse(mail(x+strings.Repeat("é", 600000)+"\nend\n"), 100<<10) // 1.2 MB
		text, note, _ := strings.Cut(p.text, "\n\n[")
		if text != x+strings.Repeat("é", 1<<19-len(x)) || note != "… cut by the gateway: the text of this mail is longer than 1024 KiB; read it whole in your mail client]" {
			t.Errorf("%q: text: %d bytes, %q … %q", x, len(p.text), p.text[:min(len(p.text), 10)], p.text[max(0, len(p.text)-120):])
		}
	}
	p := parse(mail(strings.Repeat("é", 1<<19)), 100<<10) // exactly 1 MiB
	if p.text != strings.Repeat("é", 1<<19) {
		t.Errorf("a text of 1 MiB: %d bytes, %q…", len(p.text), p.text[max(0, len(p.text)-120):])
	}
}

// An RFC 2231 file name in a charset other than UTF-8 (which Go's mime
// package leaves out) is decoded from that charset, continuations too;
// an ASCII name= in the Content-Type does not hide it.
func TestParseAttachmentNameCharsets(t *testing.T) {
	part := func(disp string) string {
		return "--m\nContent-Type: application/pdf\nContent-Disposition: " + disp + "\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n"
	}
	raw := crlf("From: bob@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=m\n\n" +
		"--m\nContent-Type: text/plain\n\nsee attached\n" +
		part("attachment; filename*=iso-8859-1''r%E9sum%E9.pdf") +
		part("attachment; filename*=ISO-8859-15'fr'%A4uros.pdf") +
		part("attachment;\n filename*0*=koi8-r''%F0%D2%C9;\n filename*1*=%D7%C5%D4.pdf") +
		part("attachment; filename*=utf8''caf%C3%A9.pdf") +
		part("attachment; filename*=us-ascii''caf%E9.pdf") +
		strings.Replace(part("attachment; filename*=windows-1251''%CF%F0%E8%E2%E5%F2.pdf"), "application/pdf", "application/pdf; name=file.pdf", 1) +
		"--m--\n")
	p := parse([]byte(raw), 1<<20)
	var names []string
	for _, a := range p.attachments {
		names = append(names, a.Name)
	}
	if want := "résumé.pdf,€uros.pdf,Привет.pdf,café.pdf,café.pdf,Привет.pdf"; strings.Join(names, ",") != want {
		t.Errorf("names %q, want %s", names, want)
	}
}

// A bounce's status maps as SMTP replies do: 5.2.2 is a full mailbox (the
// recipient's side), not a message too large.
func TestBounceStatus(t *testing.T) {
	for status, want := range map[string]error{
		"5.2.2": legacy.ErrForbidden, "5.3.4": legacy.ErrTooLarge, "5.2.3": legacy.ErrTooLarge,
		"5.1.1": legacy.ErrNotFound, "5.7.1": legacy.ErrPolicy, "5.6.0": legacy.ErrRejected, "": legacy.ErrRejected,
	} {
		err := (&bounce{action: "failed", status: status, diagnostic: "smtp; 552 mailbox full"}).err()
		var ce *legacy.CodeError
		if !errors.Is(err, want) || !errors.As(err, &ce) || ce.Code != status {
			t.Errorf("status %q: %v, want %v with the code", status, err, want)
		}
	}
	var re *legacy.ReasonError
	if err := (&bounce{action: "failed", status: "5.2.2"}).err(); !errors.As(err, &re) || !strings.Contains(re.Reason, "mailbox is full") {
		t.Errorf("5.2.2 reason: %v", err)
	}
}

// HTML mail keeps what a reader needs: link texts with their URL, table
// cells apart, list items with bullets; a named anchor hides nothing.
func TestParseHTMLLinksTablesLists(t *testing.T) {
	p := parse([]byte(crlf("From: Shop <noreply@shop.example>\nSubject: Confirm\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"+
		`<html><body><a name="top"></a><p>Please <a href="https://shop.example/confirm?t=abc">Confirm my account</a>.</p>`+
		`<p>Or open <a href="https://shop.example/">https://shop.example/</a></p>`+
		`<table><tr><td>Item</td><td>Price</td></tr><tr><td>Book</td><td>12 EUR</td></tr></table>`+
		`<ul><li>fast</li><li>cheap</li></ul><div>Regards</div><div>The shop</div></body></html>`+"\n")), 1<<20)
	for _, want := range []string{
		"Please Confirm my account (https://shop.example/confirm?t=abc).",
		"Or open https://shop.example/\n",
		"Item | Price\nBook | 12 EUR",
		"• fast\n• cheap",
		"Regards\nThe shop",
	} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text %q lacks %q", p.text, want)
		}
	}
}
