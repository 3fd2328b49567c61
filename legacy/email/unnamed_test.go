package email

import (
	"testing"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/email/emailtest"
)

// Files without a name (an inline image referenced by cid:, an
// attachment with no filename) get one from their type, with an
// extension: "image-1.png", not "file".
func TestUnnamedFilesNamedByType(t *testing.T) {
	d := emailtest.StartDovecot(t, testUser)
	r := runSession(t, testNetwork(t), fields(d.Addr, ""), nil)
	r.waitState(t, 0)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.Deliver(t, "From: bob@example.org\nTo: alice@example.com\nSubject: pics\nMessage-ID: <u1@example.org>\nMIME-Version: 1.0\n"+
		"Content-Type: multipart/related; boundary=r\n\n"+
		"--r\nContent-Type: text/html; charset=utf-8\n\n<p>look <img src=\"cid:c1\"></p>\n"+
		"--r\nContent-Type: image/png\nContent-ID: <c1>\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\niVBORw0K\n"+
		"--r\nContent-Type: application/pdf\nContent-Disposition: attachment\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n--r--\n")
	in := r.waitIncoming(t, 1)
	var names []string
	for _, a := range in[0].Attachments {
		names = append(names, a.Name+" "+a.Type)
	}
	if len(names) != 2 || names[0] != "image-1.png image/png" || names[1] != "attachment-2.pdf application/pdf" {
		t.Errorf("files %q, want image-1.png and attachment-2.pdf", names)
	}
}
