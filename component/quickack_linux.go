package component

import (
	"net"
	"syscall"
)

// quickAcker returns a function that acknowledges the data read so far on
// nc at once (TCP_QUICKACK, which Linux turns off again by itself, hence
// after every read), or nil when nc is not a TCP connection.
//
// Why: Prosody leaves Nagle's algorithm on for its connections by default
// (network_settings.nagle). Its next small write to the component then
// waits until the previous one is acknowledged, and Linux delays the ACK
// of data it has nothing to answer to yet (up to 40 ms) — a gateway, which
// answers a message only after storing and sending it, hits that on every
// burst: echo messages through Prosody were latency-bound at about half
// their rate, with the host idle. Acknowledging at once costs one
// setsockopt per read.
func quickAcker(nc net.Conn) func() {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1) }
	return func() { _ = rc.Control(set) }
}
