// Package emailtest starts a real Dovecot IMAP server for tests of the
// email adapter and of the whole gateway.
package emailtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Dovecot is a real Dovecot IMAP server for one user, started per
// connection with `doveadm exec imap` (PREAUTH, as go-imap's own tests do)
// behind a loopback listener, so it needs no system user, no auth setup
// and no ports of its own. It needs the Debian package dovecot-imapd. Run
// as root, the imap processes run as nobody (Dovecot refuses root).
type Dovecot struct {
	// Addr is the IMAP address (127.0.0.1:port, plain text, pre-authenticated).
	Addr string
	mu   sync.Mutex
	cmds []*exec.Cmd
}

// StartDovecot starts Dovecot for user; it is stopped when the test ends.
// A missing doveadm fails the test with the package to install.
func StartDovecot(t testing.TB, user string) *Dovecot {
	t.Helper()
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Fatalf("Dovecot is needed for this test and doveadm is not in PATH: install the Debian package dovecot-imapd (apt-get install dovecot-imapd, or run 'make deps' as root)")
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
	d := &Dovecot{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cmd := exec.Command(doveadm, "-c", cfg, "exec", "imap")
			cmd.Env = []string{"USER=" + user, "PATH=" + os.Getenv("PATH")}
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
				c.Process.Kill() // only the processes this server started, by PID
			}
		}
	})
	return d
}

// Deliver appends a mail (LF or CRLF line ends) to INBOX through a second
// IMAP connection, as a delivery agent would.
func (d *Dovecot) Deliver(t testing.TB, raw string) {
	t.Helper()
	cl, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	cmd := cl.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: time.Now()})
	cmd.Write([]byte(raw))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("APPEND to Dovecot: %v", err)
	}
	cl.Logout().Wait()
}
