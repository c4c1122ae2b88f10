package faultproxy_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/faultproxy"
)

func awaitHolding(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.AwaitHolding(ctx, n); err != nil {
		t.Fatalf("holding %d, want %d: %v", p.Holding(), n, err)
	}
}

func TestHoldUntilReleased(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100000)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/", Times: 1, Action: faultproxy.Hold, After: 4096})
	url := "http://" + p.Host() + "/v2/x/blobs/sha256:aa"

	resp := get(t, t.Context(), testClient(t), url, "")
	head := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, head); err != nil || !bytes.Equal(head, body[:4096]) {
		t.Fatalf("first bytes: %v", err)
	}
	awaitHolding(t, p, 1)
	if sent := p.BytesSent("GET", "/blobs/"); sent != 4096 {
		t.Fatalf("sent %d bytes while held, want 4096", sent)
	}
	p.Release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), body) {
		t.Fatalf("body after release: %v, %d bytes", err, len(head)+len(rest))
	}
	awaitHolding(t, p, 0)
	if reqs := p.Requests(); len(reqs) != 1 || reqs[0].Fault != faultproxy.Hold || reqs[0].Bytes != int64(len(body)) {
		t.Errorf("requests %+v", reqs)
	}
}

func TestHoldEndsWhenClientLeaves(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100000)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/", Action: faultproxy.Hold, After: 100})
	url := "http://" + p.Host() + "/v2/x/blobs/sha256:aa"

	ctx, cancel := context.WithCancel(t.Context())
	resp := get(t, ctx, testClient(t), url, "")
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	awaitHolding(t, p, 1)
	cancel()
	awaitHolding(t, p, 0) // not released: the client went away
	if sent := p.BytesSent("GET", "/blobs/"); sent != 100 {
		t.Errorf("sent %d bytes, want 100", sent)
	}
}
