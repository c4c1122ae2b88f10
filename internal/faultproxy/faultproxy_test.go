package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/faultproxy"
)

// upstream serves body at any path with Range support and counts requests.
func upstream(t *testing.T, body []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Seen-Host", r.Host)
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func testClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func get(t *testing.T, ctx context.Context, c *http.Client, url, rng string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestPassThroughRecordsRequests(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10000)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	c := testClient(t)
	url := "http://" + p.Host() + "/v2/x/blobs/sha256:aa"

	resp := get(t, t.Context(), c, url, "")
	data, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(data, body) {
		t.Fatalf("read: %v, %d bytes", err, len(data))
	}
	if got := resp.Header.Get("X-Seen-Host"); got != p.Host() {
		t.Errorf("upstream saw Host %q, want the proxy's %q", got, p.Host())
	}
	resp = get(t, t.Context(), c, url, "bytes=10-")
	data, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(data, body[10:]) {
		t.Errorf("ranged GET: status %d, %d bytes", resp.StatusCode, len(data))
	}

	reqs := p.Requests()
	if len(reqs) != 2 {
		t.Fatalf("recorded %d requests, want 2: %+v", len(reqs), reqs)
	}
	want := []faultproxy.Request{
		{Method: "GET", Path: "/v2/x/blobs/sha256:aa", Status: 200, Bytes: int64(len(body))},
		{Method: "GET", Path: "/v2/x/blobs/sha256:aa", Range: "bytes=10-", Status: 206, Bytes: int64(len(body) - 10)},
	}
	for i := range want {
		got := reqs[i]
		if got.Start.IsZero() || got.End.Before(got.Start) {
			t.Errorf("request %d: served from %v to %v", i, got.Start, got.End)
		}
		got.Start, got.End = time.Time{}, time.Time{}
		if got != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, got, want[i])
		}
	}
	if n := p.Count("GET", "sha256:aa"); n != 2 {
		t.Errorf("Count = %d", n)
	}
	if n := p.BytesSent("GET", "sha256:aa"); n != int64(2*len(body)-10) {
		t.Errorf("BytesSent = %d", n)
	}
}

func TestCut(t *testing.T) {
	body := bytes.Repeat([]byte{0xAB}, 1<<20)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	c := testClient(t)
	url := "http://" + p.Host() + "/v2/x/blobs/sha256:aa"
	p.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/sha256:aa", Times: 1, Action: faultproxy.Cut, After: 1000})

	resp := get(t, t.Context(), c, url, "")
	data, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read error %v, want unexpected EOF", err)
	}
	if len(data) != 1000 {
		t.Errorf("read %d bytes before the cut, want 1000", len(data))
	}
	// Times: 1, so the next request goes through.
	resp = get(t, t.Context(), c, url, "bytes=1000-")
	data, err = io.ReadAll(resp.Body)
	if err != nil || len(data) != len(body)-1000 {
		t.Errorf("after the cut: %v, %d bytes", err, len(data))
	}
	reqs := p.Requests()
	if reqs[0].Fault != faultproxy.Cut || reqs[0].Bytes != 1000 || reqs[1].Fault != 0 || reqs[1].Range != "bytes=1000-" {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestCutBeforeAnyByte(t *testing.T) {
	up, _ := upstream(t, []byte("hello"))
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Path: "/", Action: faultproxy.Cut, After: 0})
	resp := get(t, t.Context(), testClient(t), "http://"+p.Host()+"/a", "")
	data, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(data) != 0 {
		t.Errorf("read %d bytes, error %v; want 0 and unexpected EOF", len(data), err)
	}
}

func TestStall(t *testing.T) {
	body := bytes.Repeat([]byte{1}, 100000)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Method: "GET", Path: "/blob", Times: 1, Action: faultproxy.Stall, After: 5000})

	ctx, cancel := context.WithCancel(t.Context())
	resp := get(t, ctx, testClient(t), "http://"+p.Host()+"/blob", "")
	buf := make([]byte, 5000)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("read the bytes before the stall: %v", err)
	}
	// Nothing more arrives; the read ends only when the client gives up.
	done := make(chan error, 1)
	go func() {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			err = errors.New("read bytes after the stall")
		}
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("read after stall: %v, want context.Canceled", err)
	}
	if r := p.Requests()[0]; r.Fault != faultproxy.Stall || r.Bytes != 5000 {
		t.Errorf("recorded %+v", r)
	}
}

func TestCloseEndsStall(t *testing.T) {
	up, _ := upstream(t, bytes.Repeat([]byte{1}, 100000))
	p := faultproxy.New(up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Action: faultproxy.Stall, After: 10})
	resp := get(t, t.Context(), testClient(t), "http://"+p.Host()+"/blob", "")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("body after Close read to the end without error")
	}
	p.Close() // idempotent
}

func TestStatus(t *testing.T) {
	up, hits := upstream(t, []byte("payload"))
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/", Times: 2, Action: faultproxy.Status, Code: 429, RetryAfter: "1"})
	c := testClient(t)
	url := "http://" + p.Host() + "/v2/x/blobs/sha256:aa"

	for i := range 2 {
		resp := get(t, t.Context(), c, url, "")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), "TOOMANYREQUESTS") {
			t.Errorf("request %d: status %d, Retry-After %q, body %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("injected statuses reached the upstream %d times", hits.Load())
	}
	resp := get(t, t.Context(), c, url, "")
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "payload" {
		t.Errorf("third request: %d %q", resp.StatusCode, body)
	}
	// A HEAD does not match a GET fault.
	p.Add(faultproxy.Fault{Method: "GET", Path: "/", Action: faultproxy.Status, Code: 503})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, url, nil)
	head, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 {
		t.Errorf("HEAD: %d", head.StatusCode)
	}
	if resp := get(t, t.Context(), c, url, ""); resp.StatusCode != 503 {
		t.Errorf("GET with an unlimited 503 fault: %d", resp.StatusCode)
	}
	p.Reset()
	if resp := get(t, t.Context(), c, url, ""); resp.StatusCode != 200 {
		t.Errorf("GET after Reset: %d", resp.StatusCode)
	}
	reqs := p.Requests()
	if reqs[0].Status != 429 || reqs[0].Fault != faultproxy.Status || reqs[2].Status != 200 {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestIgnoreRange(t *testing.T) {
	body := []byte("0123456789")
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Path: "/blob", Times: 1, Action: faultproxy.IgnoreRange})
	c := testClient(t)

	resp := get(t, t.Context(), c, "http://"+p.Host()+"/blob", "bytes=4-")
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(data, body) {
		t.Errorf("with IgnoreRange: %d %q, want 200 and the whole body", resp.StatusCode, data)
	}
	resp = get(t, t.Context(), c, "http://"+p.Host()+"/blob", "bytes=4-")
	data, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 206 || string(data) != "456789" {
		t.Errorf("after the fault: %d %q", resp.StatusCode, data)
	}
	if r := p.Requests()[0]; r.Range != "bytes=4-" || r.Fault != faultproxy.IgnoreRange {
		t.Errorf("recorded %+v", r)
	}
}

func TestThrottle(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 256<<10)
	up, _ := upstream(t, body)
	p := faultproxy.Start(t, up.Listener.Addr().String())
	p.Add(faultproxy.Fault{Path: "/blob", Action: faultproxy.Throttle, Rate: 1 << 20})
	c := testClient(t)

	start := time.Now()
	resp := get(t, t.Context(), c, "http://"+p.Host()+"/blob", "")
	data, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	if !bytes.Equal(data, body) {
		t.Fatalf("throttled body: %d bytes, want the %d sent upstream", len(data), len(body))
	}
	// Pacing guarantees a lower bound only: the last chunk is due at
	// (size - chunk) / rate; a slow machine takes longer, never less.
	if min := 220 * time.Millisecond; took < min {
		t.Errorf("256 KiB at 1 MiB/s took %s, want at least %s", took, min)
	}
	r := p.Requests()[0]
	if r.Fault != faultproxy.Throttle || r.Bytes != int64(len(body)) || r.Start.IsZero() || r.End.Before(r.Start) {
		t.Errorf("recorded %+v", r)
	}
}
