package gateway

import (
	"bytes"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBufferedWriterFlushesWithinTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		bw := newBufferedWriter(&out, 200*time.Millisecond)
		defer bw.Close()
		_, _ = bw.Write([]byte("line 1\n"))
		if got := out.String(); got != "" {
			t.Fatalf("written before the flush interval: %q", got)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := out.String(); got != "line 1\n" {
			t.Fatalf("after the flush interval the output is %q, want the line", got)
		}
	})
}

func TestBufferedWriterCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out lockedBuffer
		bw := newBufferedWriter(&out, time.Hour)
		_, _ = bw.Write([]byte("last words\n"))
		bw.Close()
		if got := out.String(); got != "last words\n" {
			t.Fatalf("after Close the output is %q, want the buffered line", got)
		}
	})
}
