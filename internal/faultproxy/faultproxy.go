// Package faultproxy is an HTTP reverse proxy for tests that injects the
// network faults a real registry cannot show on demand: a connection cut in
// the middle of a body, a stalled body, a body held until the test releases
// it, error statuses (429 with Retry-After, 5xx) and a server that ignores
// Range requests. It records every request with its Range header and the
// body bytes it sent back.
//
// Faults are added at run time and apply to the next N requests that match a
// method and a path substring:
//
//	p := faultproxy.Start(t, reg.DirectHost())
//	p.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/" + d.String(), Times: 1,
//		Action: faultproxy.Cut, After: 4096})
//
// The proxy listens on 127.0.0.1 only and keeps the client's Host header, as
// internal/testregistry's counting front does. All methods are safe for
// concurrent use.
package faultproxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Action is what a Fault does to a matching request.
type Action int

const (
	// Cut forwards the request, sends After bytes of the response body, then
	// closes the connection: the client sees an unexpected EOF mid-body.
	Cut Action = iota + 1
	// Stall forwards the request, sends After bytes of the response body,
	// then sends nothing more while keeping the connection open, until the
	// client goes away or the proxy is closed.
	Stall
	// Status answers Code (with a Retry-After header if RetryAfter is set)
	// and a registry-style JSON error body without forwarding.
	Status
	// IgnoreRange forwards the request without its Range header, so the
	// client gets the whole body with 200 whatever range it asked for.
	IgnoreRange
	// Hold forwards the request, sends After bytes of the response body,
	// then holds the rest until Release is called (the body then completes
	// normally), the client goes away, or the proxy is closed. See hold.go.
	Hold
	// Throttle forwards the request and sends the response body at Rate
	// bytes per second (each response on its own): a link that limits
	// every connection, as object storage does.
	Throttle
)

func (a Action) String() string {
	switch a {
	case 0:
		return "none"
	case Cut:
		return "cut"
	case Stall:
		return "stall"
	case Status:
		return "status"
	case IgnoreRange:
		return "ignore-range"
	case Hold:
		return "hold"
	case Throttle:
		return "throttle"
	}
	return "unknown"
}

// Fault is one rule. A request matches when its method equals Method (any
// method if empty) and its URL path contains Path.
type Fault struct {
	Method string
	Path   string
	// Times is how many matching requests the fault applies to; 0 means
	// every matching request until Reset.
	Times int
	Action
	// After is the number of body bytes Cut and Stall send first.
	After int64
	// Code is the status Status answers.
	Code int
	// RetryAfter is the Retry-After header Status sends, e.g. "1".
	RetryAfter string
	// Rate is the body bytes per second Throttle sends.
	Rate int64
}

// Request is one request the proxy saw.
type Request struct {
	Method string
	Path   string // URL path without the query
	Range  string // the client's Range header, "" if none
	Fault  Action // the fault applied, 0 if none
	Status int    // status sent to the client; 0 if no header was sent
	Bytes  int64  // response body bytes sent to the client
	// Start and End are when the proxy received the request and finished
	// its response (End is zero while it is served).
	Start, End time.Time
}

// rule is a Fault with its remaining uses.
type rule struct {
	Fault
	left int // remaining uses; < 0 for unlimited
}

// record is a Request being served; bytes grow while the body streams.
type record struct {
	req    Request // Bytes unused; guarded by Proxy.mu
	bytes  atomic.Int64
	action Action
}

// Proxy is a running fault-injecting reverse proxy.
type Proxy struct {
	srv       *httptest.Server
	transport *http.Transport
	closed    chan struct{}
	closeOnce sync.Once

	mu    sync.Mutex
	rules []*rule
	reqs  []*record

	holds holds // responses held by Hold faults
}

type recordKey struct{}

// Start starts a proxy in front of target (host:port, plain HTTP) and closes
// it in t.Cleanup.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p := New(target)
	t.Cleanup(p.Close)
	return p
}

// New starts a proxy in front of target (host:port, plain HTTP) on a free
// 127.0.0.1 port. The caller must Close it.
func New(target string) *Proxy {
	p := &Proxy{transport: &http.Transport{}, closed: make(chan struct{})}
	u := &url.URL{Scheme: "http", Host: target}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // Distribution builds Location URLs from Host
			if rec, _ := pr.In.Context().Value(recordKey{}).(*record); rec != nil && rec.action == IgnoreRange {
				pr.Out.Header.Del("Range")
				pr.Out.Header.Del("If-Range")
			}
		},
		Transport:     p.transport,
		FlushInterval: -1, // stream: a cut after K bytes delivers exactly K
		ModifyResponse: func(resp *http.Response) error {
			if rec, _ := resp.Request.Context().Value(recordKey{}).(*record); rec != nil {
				p.setStatus(rec, resp.StatusCode)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if rec, _ := r.Context().Value(recordKey{}).(*record); rec != nil {
				p.setStatus(rec, http.StatusBadGateway)
			}
			writeError(w, http.StatusBadGateway, "", "faultproxy: "+err.Error())
		},
		// Cuts and stalls make the copy fail by design; don't log them.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, f := p.begin(r)
		switch rec.action {
		case Status:
			p.setStatus(rec, f.Code)
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			writeError(w, f.Code, f.RetryAfter, "faultproxy: injected status")
			return
		case Cut, Stall:
			w = &faultWriter{ResponseWriter: w, rec: rec, fault: f, req: r, closed: p.closed}
		case Hold:
			w = &holdWriter{ResponseWriter: w, rec: rec, after: f.After, req: r, closed: p.closed, holds: &p.holds}
		case Throttle:
			w = &throttleWriter{countingWriter: countingWriter{ResponseWriter: w, rec: rec}, rate: f.Rate, req: r, closed: p.closed}
		default:
			w = &countingWriter{ResponseWriter: w, rec: rec}
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
		p.mu.Lock()
		rec.req.End = time.Now()
		p.mu.Unlock()
	}))
	return p
}

// Host returns "127.0.0.1:PORT" of the proxy; tests put it in references.
func (p *Proxy) Host() string { return p.srv.Listener.Addr().String() }

// Close ends stalled responses, stops the proxy and closes its upstream
// connections. It is idempotent.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.transport.CloseIdleConnections()
	})
}

// Add appends a fault. Faults are tried in the order they were added; the
// first one that matches a request and has uses left applies to it.
func (p *Proxy) Add(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	left := f.Times
	if left <= 0 {
		left = -1
	}
	p.rules = append(p.rules, &rule{Fault: f, left: left})
}

// Reset removes every fault; recorded requests stay.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Requests returns a copy of every request seen, in arrival order. A
// request is recorded before it is forwarded, and its body bytes are counted
// before the client can read them.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.reqs))
	for i, rec := range p.reqs {
		out[i] = rec.req
		out[i].Bytes = rec.bytes.Load()
	}
	return out
}

// Matching returns the recorded requests with the given method (any if
// empty) whose path contains path.
func (p *Proxy) Matching(method, path string) []Request {
	var out []Request
	for _, r := range p.Requests() {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, path) {
			out = append(out, r)
		}
	}
	return out
}

// Count is len(Matching(method, path)).
func (p *Proxy) Count(method, path string) int { return len(p.Matching(method, path)) }

// BytesSent sums the body bytes sent for the matching requests.
func (p *Proxy) BytesSent(method, path string) int64 {
	var n int64
	for _, r := range p.Matching(method, path) {
		n += r.Bytes
	}
	return n
}

// ResetRequests forgets every recorded request.
func (p *Proxy) ResetRequests() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

// begin records r and picks the fault that applies to it.
func (p *Proxy) begin(r *http.Request) (*record, Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec := &record{req: Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Start: time.Now()}}
	var f Fault
	for _, ru := range p.rules {
		if ru.left == 0 || (ru.Method != "" && ru.Method != r.Method) || !strings.Contains(r.URL.Path, ru.Path) {
			continue
		}
		if ru.left > 0 {
			ru.left--
		}
		f = ru.Fault
		rec.action = f.Action
		rec.req.Fault = f.Action
		break
	}
	p.reqs = append(p.reqs, rec)
	return rec, f
}

func (p *Proxy) setStatus(rec *record, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec.req.Status = code
}

// writeError answers a Distribution-style error body.
func writeError(w http.ResponseWriter, code int, retryAfter, msg string) {
	errCode := "UNAVAILABLE"
	if code == http.StatusTooManyRequests {
		errCode = "TOOMANYREQUESTS"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"code": errCode, "message": msg, "detail": map[string]string{"retry_after": retryAfter},
	}}})
}

// errInjected ends a response body on purpose.
var errInjected = errors.New("faultproxy: injected fault")

// countingWriter counts body bytes.
type countingWriter struct {
	http.ResponseWriter
	rec *record
}

func (w *countingWriter) Write(b []byte) (int, error) {
	// Count before writing, so that a client that has read the bytes finds
	// them counted; take back what was not written.
	w.rec.bytes.Add(int64(len(b)))
	n, err := w.ResponseWriter.Write(b)
	w.rec.bytes.Add(int64(n - len(b)))
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// faultWriter passes fault.After body bytes, then cuts or stalls.
type faultWriter struct {
	http.ResponseWriter
	rec    *record
	fault  Fault
	req    *http.Request
	closed <-chan struct{}
	sent   int64
	done   bool // the fault has fired; every later write fails
}

func (w *faultWriter) Write(b []byte) (int, error) {
	if w.done {
		return 0, errInjected
	}
	room := w.fault.After - w.sent
	if int64(len(b)) <= room {
		n, err := w.write(b)
		w.sent += int64(n)
		return n, err
	}
	n, err := w.write(b[:max(room, 0)])
	w.sent += int64(n)
	if err != nil {
		return n, err
	}
	w.done = true
	rc := http.NewResponseController(w.ResponseWriter)
	_ = rc.Flush() // headers and the first After bytes reach the client
	switch w.fault.Action {
	case Cut:
		if conn, _, err := rc.Hijack(); err == nil {
			_ = conn.Close()
		}
	case Stall:
		select {
		case <-w.req.Context().Done():
		case <-w.closed:
		}
	}
	return n, errInjected
}

func (w *faultWriter) write(b []byte) (int, error) {
	w.rec.bytes.Add(int64(len(b)))
	n, err := w.ResponseWriter.Write(b)
	w.rec.bytes.Add(int64(n - len(b)))
	return n, err
}

// Flush is a no-op once the fault has fired (the connection may be gone).
func (w *faultWriter) Flush() {
	if !w.done {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}
