package testregistry

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Request is one request seen by the counting front.
type Request struct {
	Method string
	Path   string // URL path without the query
	Status int    // status returned to the client; 502 if the registry was unreachable
}

// front is a reverse proxy that forwards to the registry and records every
// request before the client sees its response.
type front struct {
	srv       *httptest.Server
	transport *http.Transport

	mu   sync.Mutex
	reqs []Request
}

func newFront(direct string) *front {
	f := &front{transport: &http.Transport{}}
	target := &url.URL{Scheme: "http", Host: direct}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep the client's Host: Distribution builds upload Location
			// URLs from it, so follow-up PATCH/PUT requests come back here.
			pr.Out.Host = pr.In.Host
		},
		Transport:     f.transport,
		FlushInterval: -1, // stream blobs
		// ModifyResponse runs before the response header is written, so a
		// client holding a response finds its request already recorded.
		ModifyResponse: func(resp *http.Response) error {
			f.record(resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.record(r.Method, r.URL.Path, http.StatusBadGateway)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAVAILABLE","message":"testregistry front: registry unreachable"}]}`))
		},
	}
	f.srv = httptest.NewServer(proxy)
	return f
}

func (f *front) host() string { return f.srv.Listener.Addr().String() }

func (f *front) close() {
	f.srv.Close()
	f.transport.CloseIdleConnections()
}

func (f *front) record(method, path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, Request{Method: method, Path: path, Status: status})
}

// Requests returns a copy of every request seen by the front, in order.
func (r *Registry) Requests() []Request {
	r.front.mu.Lock()
	defer r.front.mu.Unlock()
	return append([]Request(nil), r.front.reqs...)
}

// Count returns how many requests seen by the front had the given method
// (any method if empty) and a path containing pathContains,
// e.g. Count("GET", "/blobs/sha256:abc...").
func (r *Registry) Count(method, pathContains string) int {
	r.front.mu.Lock()
	defer r.front.mu.Unlock()
	n := 0
	for _, q := range r.front.reqs {
		if (method == "" || q.Method == method) && strings.Contains(q.Path, pathContains) {
			n++
		}
	}
	return n
}

// ResetRequests forgets every recorded request.
func (r *Registry) ResetRequests() {
	r.front.mu.Lock()
	defer r.front.mu.Unlock()
	r.front.reqs = nil
}
