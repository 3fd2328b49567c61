package sms_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/sms"
)

// Kannel 1.4.5 from Debian (packages kannel and kannel-extras).
const (
	bearerbox = "/usr/sbin/bearerbox"
	smsbox    = "/usr/sbin/smsbox"
	fakesmsc  = "/usr/lib/kannel/test/fakesmsc"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a process we own for the test's duration.
func start(t *testing.T, out *syncBuffer, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// fakesmsc in interactive mode reads stdin and quits at its end: give
	// it a pipe that stays open until the process is stopped.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close() })
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// waitFor polls cond every 50 ms, at most for d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// TestKannelEndToEnd runs the adapter against a real Kannel (bearerbox,
// smsbox, and fakesmsc as the SMS centre), all on loopback: MT through
// sendsms to fakesmsc, MO from fakesmsc through the sms-service get-url to
// the adapter's webhook.
func TestKannelEndToEnd(t *testing.T) {
	for _, bin := range []string{bearerbox, smsbox, fakesmsc} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: install the Debian packages kannel and kannel-extras (.ci/install-deps.sh): %v", bin, err)
		}
	}
	dir := t.TempDir()
	admin, boxPort, sendPort, mtPort, moPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)

	// The gateway's HTTP listener, with the webhook mounted as the core does.
	var n *sms.Network
	mux := http.NewServeMux()
	gw := httptest.NewServer(mux)
	defer gw.Close()
	public := gw.URL + "/webhooks/sms.test"
	var err error
	n, err = sms.New(map[string]string{
		"kannel_send_url": fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms", sendPort),
		"kannel_username": "gw", "kannel_password": "gwpass", "kannel_secret": kSecret,
		"numbers": myNumber, "public_url": public, "timeout": "10s",
	})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/webhooks/sms.test/", http.StripPrefix("/webhooks/sms.test", n.Webhook()))

	conf := fmt.Sprintf(`group = core
admin-port = %[1]d
admin-interface = 127.0.0.1
admin-password = adminpw
smsbox-port = %[2]d
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "%[6]s/bearerbox.log"
log-level = 0
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = mt
port = %[4]d
connect-allow-ip = 127.0.0.1
our-host = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
allowed-smsc-id = mo
port = %[5]d
connect-allow-ip = 127.0.0.1
our-host = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = %[2]d
sendsms-port = %[3]d
sendsms-interface = 127.0.0.1
log-file = "%[6]s/smsbox.log"
log-level = 0
mo-recode = true
http-request-retry = 3
http-queue-delay = 1

group = sendsms-user
username = gw
password = gwpass

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "%[7]s/kannel/mo?secret=%[8]s&id=%%I&from=%%p&to=%%P&ts=%%T&text=%%a"
`, admin, boxPort, sendPort, mtPort, moPort, dir, public, kSecret)
	cfg := filepath.Join(dir, "kannel.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"bearerbox.log", "smsbox.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, b)
			}
			t.Logf("process output:\n%s", logs)
		}
	})
	start(t, logs, bearerbox, cfg)
	// Probing the fake SMSC ports would look like fakesmsc clients: wait
	// for the start-up line instead.
	if !waitFor(20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "bearerbox.log"))
		return bytes.Contains(b, []byte("Start-up done"))
	}) {
		t.Fatalf("bearerbox did not listen")
	}
	start(t, logs, smsbox, cfg)
	mt := &syncBuffer{}
	start(t, mt, fakesmsc, "-H", "127.0.0.1", "-r", fmt.Sprint(mtPort), "-m", "0")
	if !waitFor(20*time.Second, func() bool { return listening(sendPort) }) {
		t.Fatalf("smsbox did not listen")
	}

	s, rec := (&env{net: n}).run(t, legacy.Account{ID: myNumber, Owner: "u1"})

	// MT: the adapter's sendsms reaches the fake SMS centre.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := s.Send(ctx, &legacy.Message{Chat: contact, Text: "hello from XMPP", Key: "e2e-1"})
	if err != nil {
		t.Fatalf("Send through Kannel: %v", err)
	}
	if !waitFor(20*time.Second, func() bool { return strings.Contains(mt.String(), "hello from XMPP") }) {
		t.Fatalf("fakesmsc did not get the message; its output:\n%s", mt)
	}
	if out := mt.String(); !strings.Contains(out, myNumber) || !strings.Contains(out, contact) {
		t.Errorf("fakesmsc got the message with other numbers:\n%s", out)
	}
	// DLR: Kannel calls the dlr-url the adapter passed, with %d filled in.
	if rec.Wait(10*time.Second, func(ev legacy.Event) bool {
		r, ok := ev.(legacy.Receipt)
		return ok && r.ID == id && r.Chat == contact
	}) == nil {
		t.Errorf("no receipt for %s; events: %v", id, rec.Events())
	}

	// MO: fakesmsc → bearerbox → smsbox get-url → webhook → Sink.
	moOut := &syncBuffer{}
	start(t, moOut, fakesmsc, "-H", "127.0.0.1", "-r", fmt.Sprint(moPort), "-m", "1", "-i", "0.1",
		contact+" "+myNumber+" text hello from the phone")
	ev := rec.Wait(20*time.Second, func(ev legacy.Event) bool {
		m, ok := ev.(legacy.Incoming)
		return ok && m.Text == "hello from the phone"
	})
	if ev == nil {
		t.Fatalf("no incoming message from Kannel; events: %v\nfakesmsc:\n%s", rec.Events(), moOut)
	}
	if m := ev.(legacy.Incoming); m.Chat != contact || !strings.HasPrefix(string(m.ID), "kn-mo-") {
		t.Errorf("incoming = %+v", m)
	}
}
