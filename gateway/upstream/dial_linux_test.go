//go:build linux

package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestCancelBlockedDial dials a listener whose accept queue is full, so
// that the SYN goes unanswered and connect blocks until the context ends.
func TestCancelBlockedDial(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 { // fill the accept queue (never accepted)
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		defer c.Close()
	}

	tr := newTransport(t, Config{MaxIdlePerHost: 1})
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	resp, err := tr.RoundTrip(newRequest(ctx, "GET", "http://"+addr+"/", nil))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip to a full accept queue succeeded")
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		// Linux drops SYNs to a full accept queue, so the dial blocks
		// until ctx ends; anything else means the cancellation path under
		// test was never reached.
		t.Fatalf("RoundTrip to a full accept queue = %v, want a blocked dial cut by ctx (*net.OpError, Op dial)", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip = %v, want context.DeadlineExceeded", err)
	}
}
