package servertest

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// A port taken by someone else must be reported as errPortInUse (so that
// startInitial retries with new ports), never mistaken for our server.
func TestPortInUseDetected(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			o := Options{Components: map[string]string{"c.localhost": "x"}}
			var s *Server
			if kind == "prosody" {
				s = newProsody(t, o)
			} else {
				s = newEjabberd(t, o)
			}
			ports, err := freePorts(1)
			if err != nil {
				t.Fatal(err)
			}
			s.C2SAddr = l.Addr().String()
			s.ComponentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			s.mu.Lock()
			err = s.launch()
			s.mu.Unlock()
			if !errors.Is(err, errPortInUse) {
				t.Fatalf("launch with a taken c2s port: %v, want errPortInUse\n%s", err, s.logTail())
			}
			t.Logf("detected: %v", err)

			// The failed attempt's "eaddrinuse" stays in the appended
			// console log; the retry on free ports must not trip over it.
			ports, err = freePorts(2)
			if err != nil {
				t.Fatal(err)
			}
			s.C2SAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
			s.ComponentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
			s.mu.Lock()
			err = s.launch()
			s.mu.Unlock()
			if err != nil {
				t.Fatalf("retry on free ports after a port clash: %v\n%s", err, s.logTail())
			}
		})
	}
}
