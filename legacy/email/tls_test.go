package email

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"

	"github.com/jabbergate/jabbergate/legacy"
	"github.com/jabbergate/jabbergate/legacy/legacytest"
)

// testCert returns a server certificate for 127.0.0.1 and a pool trusting it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLSModes registers and sends over implicit TLS and STARTTLS (the
// production modes), with the certificate checked.
func TestTLSModes(t *testing.T) {
	cert, pool := testCert(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}

	mem := imapmemserver.New()
	user := imapmemserver.NewUser(testUser, testPass)
	user.Create("INBOX", nil)
	mem.AddUser(user)
	imapSrv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		TLSConfig: srvTLS, // STARTTLS; no InsecureAuth: login only inside TLS
		Caps:      imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}},
		Logger:    discardLogger{},
	})
	plainLn, _ := net.Listen("tcp", "127.0.0.1:0")
	tlsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go imapSrv.Serve(plainLn)
	go imapSrv.Serve(tls.NewListener(tlsLn, srvTLS))
	t.Cleanup(func() { imapSrv.Close() })

	sm := &smtpServer{notify: make(chan struct{}, 100)}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: sm}, nil })
	smtpStart := smtp.NewServer(be)
	smtpStart.Domain, smtpStart.TLSConfig, smtpStart.ErrorLog = "localhost", srvTLS, discardLogger{}
	smtpImplicit := smtp.NewServer(be)
	smtpImplicit.Domain, smtpImplicit.ErrorLog = "localhost", discardLogger{}
	sStart, _ := net.Listen("tcp", "127.0.0.1:0")
	sImpl, _ := net.Listen("tcp", "127.0.0.1:0")
	go smtpStart.Serve(sStart)
	go smtpImplicit.Serve(tls.NewListener(sImpl, srvTLS))
	t.Cleanup(func() { smtpStart.Close(); smtpImplicit.Close() })

	n := testNetwork(t)
	n.tlsConfig = &tls.Config{RootCAs: pool}
	ctx := context.Background()
	for _, c := range []struct {
		name           string
		imapL, smtpL   net.Listener
		imapSec, smtpS string
	}{
		{"implicit TLS", tlsLn, sImpl, SecurityTLS, SecurityTLS},
		{"STARTTLS", plainLn, sStart, SecurityStartTLS, SecurityStartTLS},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := fields(c.imapL.Addr().String(), c.smtpL.Addr().String())
			f["imap_security"], f["smtp_security"] = c.imapSec, c.smtpS
			if _, err := n.Register(ctx, f); err != nil {
				t.Fatalf("Register: %v", err)
			}
			s, err := n.Open(ctx, legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
			if err != nil {
				t.Fatal(err)
			}
			before := len(sm.mails())
			if _, err := s.Send(ctx, &legacy.Message{Chat: "bob@example.org", Text: "over " + c.name}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(sm.mails()) != before+1 {
				t.Errorf("mail not received")
			}
		})
	}

	// An untrusted certificate is refused: transient (the admin may fix
	// it), never a silent downgrade.
	strict := testNetwork(t)
	f := fields(tlsLn.Addr().String(), "")
	f["imap_security"] = SecurityTLS
	if _, err := strict.Register(ctx, f); !isErr(err, legacy.ErrUnavailable) {
		t.Errorf("Register with an untrusted certificate = %v, want ErrUnavailable", err)
	}
}

// A server that accepts STARTTLS and then speaks plain text: the error
// says TLS did not complete, not a bare EOF, and nothing goes in the clear.
func TestBrokenStartTLSExplained(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 broken.example ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						fmt.Fprint(c, "250-broken.example\r\n250 STARTTLS\r\n")
					case cmd == "STARTTLS":
						fmt.Fprint(c, "220 go ahead\r\nthis is not TLS at all\r\n")
						return
					default:
						fmt.Fprint(c, "500 what\r\n")
					}
				}
			}()
		}
	}()
	im := startIMAP(t, true)
	f := fields(im.addr, ln.Addr().String())
	f["smtp_security"] = "starttls"
	n := testNetwork(t)
	s, err := n.Open(context.Background(), legacy.Account{ID: testAddr, Fields: f}, &legacytest.Recorder{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(context.Background(), &legacy.Message{Chat: "bob@example.org", Text: "secret", Key: "k"})
	var re *legacy.ReasonError
	if !isErr(err, legacy.ErrUnavailable) || !errors.As(err, &re) || !strings.Contains(re.Reason, "does not complete TLS") {
		t.Errorf("Send = %v, want a transient error saying TLS did not complete", err)
	}
}
