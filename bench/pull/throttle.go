package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

const (
	// proxyChunk is the most the proxy reads from one side at a time: about
	// 1.3 ms of the link at 50 MiB/s, so the rate is smooth at that scale.
	proxyChunk = 64 << 10
	// proxyBurst is the token bucket's depth: how far a connection may run
	// ahead of its rate after a pause (5 ms at 50 MiB/s). It is also the slack
	// that absorbs the oversleeping of time.Sleep without losing rate.
	proxyBurst = 256 << 10
	// proxyQueue bounds the chunks in flight in one direction of one
	// connection (at most proxyQueue*proxyChunk bytes held by the proxy when
	// the receiver stops reading; while it reads, rate x latency).
	proxyQueue = 256
)

// bucket is a token bucket over bytes. Tokens refill at rate per second up
// to burst; a reservation may drive the count below zero (a debt), and the
// caller waits until the debt is repaid, so that back-to-back reservations
// are spaced exactly at the rate. Time is passed in, never read, so that
// tests drive it. It is not safe for concurrent use: the proxy keeps one per
// connection and direction.
type bucket struct {
	rate   float64 // bytes per second
	burst  float64 // bytes
	tokens float64
	last   time.Time
}

// newBucket returns a full bucket at time now.
func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// reserve takes n bytes at time now and returns how long the caller must
// wait before sending them (0 if the bucket held them).
func (b *bucket) reserve(now time.Time, n int) time.Duration {
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// link is the network the throttling proxy imitates, per TCP connection.
type link struct {
	rate    float64       // server-to-client bytes per second; the client-to-server direction is not limited
	latency time.Duration // one-way delay added to every byte, in each direction
}

// proxy is a TCP proxy on 127.0.0.1 that makes every connection to upstream
// look like a link: each client connection gets its own upstream connection,
// its own token bucket for the server-to-client bytes, and a delay line in
// both directions (every chunk is forwarded link.latency after the proxy
// read it, and, server to client, after the bucket let it through). A
// request/response exchange therefore gains 2 x latency, and a stream is
// limited to rate per connection: the model of an object-storage link with
// a per-connection cap. Nothing is buffered beyond proxyQueue chunks per
// direction.
type proxy struct {
	ln       net.Listener
	upstream string
	link     link

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startProxy listens on a free 127.0.0.1 port and forwards to upstream
// until close.
func startProxy(upstream string, l link) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &proxy{ln: ln, upstream: upstream, link: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// addr is the proxy's 127.0.0.1:PORT.
func (p *proxy) addr() string { return p.ln.Addr().String() }

// close stops accepting, closes every open connection and waits for the
// forwarding goroutines to end. It is safe to call more than once.
func (p *proxy) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track records c as open, or closes it and returns false once the proxy is
// closing.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

// handle forwards one client connection until both directions end or
// either fails.
func (p *proxy) handle(client net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return // the client sees its connection closed
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := forward(ctx, up, client, nil, p.link.latency); err != nil {
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		b := newBucket(p.link.rate, proxyBurst, time.Now())
		if err := forward(ctx, client, up, b, p.link.latency); err != nil {
			cancel()
		}
	}()
	go func() {
		<-ctx.Done()
		client.Close() // unblocks both directions
		up.Close()
	}()
	wg.Wait()
}

// chunk is bytes read from one side and the earliest time they may be
// written to the other.
type chunk struct {
	data []byte
	due  time.Time
}

// forward copies src to dst through a delay line: a reader takes up to
// proxyChunk bytes, waits for b (nil: unlimited), and queues them due
// latency later; a writer writes each chunk when it is due. At src's EOF it
// half-closes dst once the queue is drained. It returns nil at a clean EOF,
// else the first error (or ctx's, when the other direction failed).
func forward(ctx context.Context, dst, src net.Conn, b *bucket, latency time.Duration) error {
	queue := make(chan chunk, proxyQueue)
	readErr := make(chan error, 1)
	go func() {
		defer close(queue)
		buf := make([]byte, proxyChunk)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				data := slices.Clone(buf[:n]) // the queue holds what was read, not whole buffers
				if b != nil {
					if !sleep(ctx, b.reserve(time.Now(), n)) {
						readErr <- ctx.Err()
						return
					}
				}
				select {
				case queue <- chunk{data: data, due: time.Now().Add(latency)}:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				return
			}
		}
	}()
	for c := range queue {
		if !sleep(ctx, time.Until(c.due)) {
			return ctx.Err()
		}
		if _, err := dst.Write(c.data); err != nil {
			return err
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	return nil
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
