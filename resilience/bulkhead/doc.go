// Package bulkhead isolates a dependency by bounding how many calls to it run at once.
//
// A [Bulkhead] hands out at most [Config].MaxConcurrent slots. A caller that
// finds every slot busy either is rejected at once with [ErrFull] or, with a
// MaxQueue, waits in a FIFO queue for at most MaxWait (or until its ctx is
// done). A released slot goes straight to the oldest waiter, so newcomers
// cannot starve the queue.
//
// Use the permit API on a hot path, or [Policy] to compose with
// resilience.Chain:
//
//	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 64, MaxQueue: 128, MaxWait: 50 * time.Millisecond})
//	if err != nil {
//		return err
//	}
//	p, err := b.Acquire(ctx)
//	if err != nil {
//		return err // errors.Is(err, bulkhead.ErrFull), or ctx's error
//	}
//	defer p.Release()
//	return callBackend(ctx)
package bulkhead
