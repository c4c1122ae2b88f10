package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestBucketReserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		at   int // ms after t0
		n    int
		want time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst is free", []step{{0, 1000, 0}}},
		{"debt waits at the rate", []step{{0, 1000, 0}, {0, 500, 500 * time.Millisecond}}},
		{"back-to-back reservations space out", []step{{0, 1000, 0}, {0, 1000, time.Second}, {0, 1000, 2 * time.Second}}},
		{"refill after a pause", []step{{0, 1000, 0}, {1000, 1000, 0}}},
		{"refill stops at burst", []step{{0, 1000, 0}, {5000, 1000, 0}, {5000, 1000, time.Second}}},
		{"paying the debt on time", []step{{0, 1000, 0}, {0, 1000, time.Second}, {1000, 1000, time.Second}}},
		{"time going backwards refills nothing", []step{{1000, 1000, 0}, {0, 1000, time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBucket(1000, 1000, t0) // 1000 B/s, 1000 B deep
			for i, s := range tt.steps {
				if got := b.reserve(at(s.at), s.n); got != s.want {
					t.Fatalf("step %d: reserve(%dms, %d) = %s, want %s", i, s.at, s.n, got, s.want)
				}
			}
		})
	}
}

// TestProxyForwards checks that the proxy carries a request and a response
// intact, with the latency added in each direction and the response held to
// the rate. It uses the wall clock, so its bounds are loose.
func TestProxyForwards(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 2 << 20
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req := make([]byte, 4)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		_, _ = c.Write(payload)
	}()

	const latency = 20 * time.Millisecond
	p, err := startProxy(ln.Addr().String(), link{rate: 8 << 20, latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	if _, err := c.Write([]byte("GET!")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(begin)
	if !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(payload))
	}
	// 2 MiB at 8 MiB/s less the burst, plus two latencies.
	want := time.Duration(float64(size-proxyBurst)/(8<<20)*float64(time.Second)) + 2*latency
	if elapsed < want-10*time.Millisecond || elapsed > 4*want {
		t.Errorf("took %s, want about %s", elapsed, want)
	}
}
