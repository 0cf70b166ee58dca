package testutil

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, notes the port and closes the listener. Another process
// can take the port before the caller binds it; the window is small, and
// processes that must bind a given port (a restarted backend) retry for a
// bounded time. Prefer starting servers on port 0 and reading back their
// address, as [StartBackend] does.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("FreePort: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		tb.Fatalf("FreePort: %v", err)
	}
	return port
}

// FreeAddr returns "127.0.0.1:<port>" for a [FreePort], with the same race.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}
