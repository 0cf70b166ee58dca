package gateway

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRouteTimer checks the pooled route-timeout timer: it ends the
// request's context with ErrRouteTimeout once, unless response headers
// won the race or the timer was stopped first.
func TestRouteTimer(t *testing.T) {
	tests := []struct {
		name        string
		headersWon  bool // response headers arrived before the deadline
		stopAfter   time.Duration
		wantCause   error
		wantHeaders int32
	}{
		{name: "fires", stopAfter: 2 * time.Second, wantCause: ErrRouteTimeout, wantHeaders: 2},
		{name: "stopped before the deadline", stopAfter: 500 * time.Millisecond, wantHeaders: 0},
		{name: "headers won", headersWon: true, stopAfter: 2 * time.Second, wantHeaders: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// A pool of the bubble's own: its timers belong to the bubble.
				var pool routeTimerPool
				rq := new(request)
				ctx, cancel := context.WithCancelCause(context.Background())
				rq.cancel = cancel
				if tt.headersWon {
					rq.headers.Store(1)
				}
				timer := pool.start(rq, time.Second)
				time.Sleep(tt.stopAfter)
				synctest.Wait()
				timer.stop()
				if got := context.Cause(ctx); !errors.Is(got, tt.wantCause) || (tt.wantCause == nil && got != nil) {
					t.Errorf("context.Cause() = %v, want %v", got, tt.wantCause)
				}
				if got := rq.headers.Load(); got != tt.wantHeaders {
					t.Errorf("headers = %d, want %d", got, tt.wantHeaders)
				}
				// A timer back in the pool must not reach the old request.
				other := pool.start(new(request), time.Hour)
				other.stop()
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if got := rq.headers.Load(); got != tt.wantHeaders {
					t.Errorf("headers = %d after the timer was reused, want %d", got, tt.wantHeaders)
				}
				cancel(nil)
			})
		})
	}
}
