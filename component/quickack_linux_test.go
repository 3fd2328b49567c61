package component

import (
	"net"
	"syscall"
	"testing"
)

// TestQuickAckAfterReads: the link's reader turns TCP_QUICKACK on after a
// read that returned data (Linux clears it by itself), so the server's
// next write is not held back by Nagle waiting for a delayed ACK.
func TestQuickAckAfterReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	quickAck := func() int {
		rc, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		v := -1
		rc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK) })
		return v
	}
	r := newReader(server, 1<<16)
	if r.hook.ackNow == nil {
		t.Fatal("no quick-ACK hook on a TCP connection")
	}
	// Off first (the kernel's delayed-ACK mode once data has flowed).
	rc, _ := server.(*net.TCPConn).SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0) })
	if v := quickAck(); v != 0 {
		t.Fatalf("TCP_QUICKACK = %d after turning it off", v)
	}
	if _, err := client.Write([]byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := r.hook.Read(buf); n == 0 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	if v := quickAck(); v != 1 {
		t.Errorf("TCP_QUICKACK = %d after a read, want 1", v)
	}
	if newReader(struct{ net.Conn }{server}, 1<<16).hook.ackNow != nil {
		t.Error("a quick-ACK hook on something that is not a *net.TCPConn")
	}
}
