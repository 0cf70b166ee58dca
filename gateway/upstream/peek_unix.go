//go:build unix

package upstream

import (
	"net"
	"syscall"
)

// peerGone reports, without blocking or consuming anything, whether an idle
// connection is unusable: the server closed it (EOF), reset it, or sent
// bytes nobody asked for. It costs one system call.
func peerGone(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n > 0 || err == nil || (err != syscall.EAGAIN && err != syscall.EWOULDBLOCK)
		return true
	})
	return gone || err != nil
}
