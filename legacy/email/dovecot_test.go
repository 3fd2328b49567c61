package email

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jabbergate/jabbergate/legacy"
)

// dovecot is a real Dovecot IMAP server for one user, started per
// connection with `doveadm exec imap` (PREAUTH, as go-imap's own tests do)
// behind a loopback listener. It needs the Debian package dovecot-imapd.
// Run as root, the imap processes run as nobody (Dovecot refuses root).
type dovecot struct {
	addr string
	mu   sync.Mutex
	cmds []*exec.Cmd
}

func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Fatalf("Dovecot is needed for this test and doveadm is not in PATH: install the Debian package dovecot-imapd (apt-get install dovecot-imapd)")
	}
	dir, err := os.MkdirTemp("", "jg-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		const nobody = 65534
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "dovecot.conf")
	conf := "log_path = " + dir + "/dovecot.log\nssl = no\nmail_home = " + dir + "/%u\nmail_location = maildir:~/Mail\n" +
		"namespace inbox {\n  inbox = yes\n  separator = /\n}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dovecot{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cmd := exec.Command(doveadm, "-c", cfg, "exec", "imap")
			cmd.Env = []string{"USER=" + testUser, "PATH=" + os.Getenv("PATH")}
			cmd.Dir = dir
			cmd.Stdin, cmd.Stdout = c, c
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			if err := cmd.Start(); err != nil {
				c.Close()
				continue
			}
			d.mu.Lock()
			d.cmds = append(d.cmds, cmd)
			d.mu.Unlock()
			go func() { cmd.Wait(); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, c := range d.cmds {
			if c.Process != nil {
				c.Process.Kill()
			}
		}
	})
	return d
}

// deliver appends a mail through a second IMAP connection.
func (d *dovecot) deliver(t *testing.T, raw string) {
	t.Helper()
	cl, err := imapclient.DialInsecure(d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw = crlf(raw)
	cmd := cl.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Now()})
	cmd.Write([]byte(raw))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("APPEND to Dovecot: %v", err)
	}
	cl.Logout().Wait()
}

func TestDovecot(t *testing.T) {
	d := startDovecot(t)
	n := testNetwork(t)
	f := fields(d.addr, "")
	if _, err := n.Register(context.Background(), f); err != nil {
		t.Fatalf("Register: %v", err)
	}
	d.deliver(t, simpleMail("old@example.org", "old", "dv0@x", "before the first session"))

	r := runSession(t, n, f, nil)
	r.waitState(t, 1)
	waitStatus(t, r.rec, legacy.StatusConnected)
	d.deliver(t, "From: =?iso-8859-1?q?Jos=E9?= <jose@example.org>\nSubject: =?utf-8?q?D=C3=A9j=C3=A0?=\nMessage-ID: <dv1@x>\n"+
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nol\xe9\n")
	in := r.waitIncoming(t, 1) // IDLE wakes the session: idleRefresh is an hour
	if len(in) != 1 || in[0].ID != "dv1@x" || in[0].Chat != "jose@example.org" || in[0].Subject != "Déjà" || in[0].Text != "olé" {
		t.Errorf("incoming = %+v", in)
	}
	st := r.waitState(t, 2)
	r.close(t)

	// Restart: nothing twice, nothing skipped.
	d.deliver(t, simpleMail("bob@example.org", "2", "dv2@x", "two"))
	r2 := runSession(t, n, f, st)
	r2.waitIncoming(t, 1)
	r2.waitState(t, 3)
	if in := incomings(r2.rec); len(in) != 1 || in[0].ID != "dv2@x" {
		t.Errorf("after restart got %+v, want dv2 only", in)
	}
}
