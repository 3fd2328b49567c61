//go:build !linux

package component

import "net"

// quickAcker is Linux-only (TCP_QUICKACK); elsewhere ACKs keep the
// system's timing.
func quickAcker(net.Conn) func() { return nil }
