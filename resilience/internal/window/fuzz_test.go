package window

import (
	"testing"
	"time"
)

// FuzzNew checks that construction either fails with ErrInvalid or yields a
// window whose dimensions honour the request.
func FuzzNew(f *testing.F) {
	f.Add(100, 0, int64(10*time.Second), 10)
	f.Add(1, 1, int64(1), 1)
	f.Add(0, 3, int64(-1), 0)
	f.Add(7, 8, int64(5), 10)
	f.Fuzz(func(t *testing.T, size, shards int, span int64, buckets int) {
		if size > MaxSize || buckets > MaxBuckets {
			return // beyond the sizes worth allocating for: nothing to check
		}
		if cw, err := NewCount(size, shards); err == nil {
			if cw.Size() != size || cw.Shards() < 1 || cw.Shards() > size {
				t.Errorf("NewCount(%d, %d) = size %d, %d shards", size, shards, cw.Size(), cw.Shards())
			}
		}
		if tw, err := NewTime(time.Duration(span), buckets, 1); err == nil {
			if got := tw.Span(); got <= 0 || got > time.Duration(span) {
				t.Errorf("NewTime(%v, %d) span = %v", time.Duration(span), buckets, got)
			}
		}
	})
}

// FuzzCount drives a Count window with an arbitrary sequence of records and
// resets, each byte one operation, and compares it with the ring-per-shard
// model after every step.
func FuzzCount(f *testing.F) {
	f.Add(uint8(3), uint8(0), []byte{0, 1, 2, 3, 0, 0, 0})
	f.Add(uint8(12), uint8(2), []byte{1, 17, 33, 49, 0xff, 5, 9})
	f.Add(uint8(0), uint8(0), []byte{0xff, 1})
	f.Fuzz(func(t *testing.T, size, shardBits uint8, ops []byte) {
		shards := 1 << (shardBits % 4)
		n := int(size) + shards // at least one slot per shard
		w, err := NewCount(n, shards)
		if err != nil {
			t.Fatalf("NewCount(%d, %d) error = %v", n, shards, err)
		}
		m := newCountModel(w)
		for i, op := range ops {
			if op == 0xff {
				w.Reset()
				m.reset()
			} else {
				o := Outcome(op & 3)
				r := uint32(op >> 2)
				w.RecordShard(r, o)
				m.record(r, o)
			}
			got, want := w.Totals(), m.totals()
			if got != want {
				t.Fatalf("after op %d (%#x): Totals() = %+v, want %+v", i, op, got, want)
			}
			if got.Calls > int64(n) || got.Failures < 0 || got.Slow < 0 {
				t.Fatalf("after op %d: Totals() = %+v, out of bounds for size %d", i, got, n)
			}
		}
	})
}

// FuzzTime drives a Time window with records, time steps (forward and,
// for late records, backward) and resets, and compares totals at the latest
// time with a model of which records a bucketed window keeps: a record is
// dropped when its bucket already holds a later slot, and counted while its
// slot lies within the last B slots.
func FuzzTime(f *testing.F) {
	f.Add(uint8(9), uint8(2), []byte{0, 1, 2, 0x43, 3, 0x83, 1, 0xc3, 2})
	f.Add(uint8(0), uint8(0), []byte{0xff, 1, 0x7f, 2})
	f.Add(uint8(3), uint8(1), []byte{0x13, 0x13, 0x13, 0x13, 1, 0xe3, 2})
	f.Fuzz(func(t *testing.T, bucketsRaw, widthRaw uint8, ops []byte) {
		buckets := int64(bucketsRaw%16) + 1
		width := int64(widthRaw%8) + 1
		w, err := NewTime(time.Duration(buckets*width), int(buckets), 2)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			epoch int64
			o     Outcome
		}
		var recs []rec
		maxEpoch := map[int64]int64{} // bucket index -> latest slot recorded there
		var now int64
		for i, op := range ops {
			at := now
			switch {
			case op == 0xff:
				w.Reset()
				recs = nil
				maxEpoch = map[int64]int64{}
				continue
			case op&3 == 3 && op&0x80 == 0:
				now += int64(op >> 2) // step forward
				continue
			case op&3 == 3:
				at = max(now-int64(op>>2&0x1f), 0) // a late record
			}
			o := Outcome(op & 3 % 3)
			w.RecordShard(uint32(op>>4), time.Duration(at), o)
			e := at / width
			idx := e % buckets
			if last, ok := maxEpoch[idx]; !ok || last <= e {
				maxEpoch[idx] = e
				recs = append(recs, rec{e, o})
			}
			var want Totals
			cur := now / width
			for _, r := range recs {
				if r.epoch > cur-buckets && r.epoch <= cur && r.epoch >= maxEpoch[r.epoch%buckets] {
					want.Calls++
					if r.o&Failure != 0 {
						want.Failures++
					}
					if r.o&Slow != 0 {
						want.Slow++
					}
				}
			}
			if got := w.Totals(time.Duration(now)); got != want {
				t.Fatalf("after op %d (%#x) at %d: Totals(%d) = %+v, want %+v", i, op, at, now, got, want)
			}
		}
	})
}
