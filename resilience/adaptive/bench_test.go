package adaptive

import (
	"context"
	"testing"
)

func BenchmarkAcquireRecord(b *testing.B) {
	l, err := New(Config{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := l.Acquire()
		if err != nil {
			b.Fatal(err)
		}
		p.Record()
	}
}

func BenchmarkAcquireRecordParallel(b *testing.B) {
	l, err := New(Config{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := l.Acquire()
			if err == nil {
				p.Record()
			}
		}
	})
}

func BenchmarkAcquireDropParallel(b *testing.B) {
	l, err := New(Config{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := l.Acquire()
			if err == nil {
				p.Drop()
			}
		}
	})
}

func BenchmarkPolicy(b *testing.B) {
	l, err := New(Config{InitialLimit: 1000, MinLimit: 1000, MaxLimit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	fn := Policy[int](l)(func(context.Context) (int, error) { return 1, nil })
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fn(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
