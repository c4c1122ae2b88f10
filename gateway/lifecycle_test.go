package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// modelStatus is GET /models/{name} (and one entry of GET /v1/models).
type modelStatus struct {
	ID          string     `json:"id"`
	Object      string     `json:"object"`
	Ref         string     `json:"ref"`
	State       string     `json:"state"`
	Since       time.Time  `json:"since"`
	Digest      string     `json:"digest"`
	PID         int        `json:"pid"`
	Port        int        `json:"port"`
	InFlight    int        `json:"in_flight"`
	LastUsed    *time.Time `json:"last_used"`
	Error       string     `json:"error"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
	Restarts    int        `json:"restarts"`
	Failures    int        `json:"failures"`
	RetryAt     *time.Time `json:"retry_at"`
	CrashLoop   bool       `json:"crash_loop"`
	IdleTTL     string     `json:"idle_ttl"`
	Group       string     `json:"group"`
	Preload     bool       `json:"preload"`
}

func getStatus(t *testing.T, g *gatewayUnderTest, name string) modelStatus {
	t.Helper()
	resp, data := do(t, "GET", g.url+"/models/"+name, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /models/%s: %d %s", name, resp.StatusCode, data)
	}
	return decode[modelStatus](t, data)
}

// waitFor polls cond every 20ms; the 30s bound only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitState(t *testing.T, g *gatewayUnderTest, name, state string) modelStatus {
	t.Helper()
	var st modelStatus
	waitFor(t, name+" to be "+state, func() bool {
		st = getStatus(t, g, name)
		return st.State == state
	})
	return st
}

// processGone reports whether no process has that pid (the gateway reaps
// the runtimes it stops).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// chat sends a chat request for model and returns the runtime's pid.
func chat(t *testing.T, g *gatewayUnderTest, model string) int {
	t.Helper()
	resp, data := do(t, "POST", g.url+"/v1/chat/completions", `{"model":"`+model+`","messages":[]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat %s: %d %s", model, resp.StatusCode, data)
	}
	return decode[echoReply](t, data).PID
}

// stream opens a streaming request to model whose runtime holds it after
// its first event until POST /models/{model}/release; it returns the
// events still to come (closed when the stream ends).
func stream(t *testing.T, g *gatewayUnderTest, model string) <-chan string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream %s: %d", model, resp.StatusCode)
	}
	events := sseEvents(resp)
	if first := <-events; !strings.Contains(first, `"index":0`) {
		t.Fatalf("first event %q", first)
	}
	return events
}

func releaseStreams(t *testing.T, g *gatewayUnderTest, model string) {
	t.Helper()
	if resp, data := do(t, "POST", g.url+"/models/"+model+"/release", ""); resp.StatusCode != 200 || !strings.Contains(string(data), `"released":1`) {
		t.Fatalf("release %s: %d %s", model, resp.StatusCode, data)
	}
}

func drainEvents(events <-chan string) []string {
	var rest []string
	for e := range events {
		rest = append(rest, e)
	}
	return rest
}

// TestIdleTTLStopsRuntimeAndNextRequestColdStarts: a runtime with no
// request for idle_ttl is stopped (its health checks, polled far more
// often, do not count as use) and its model unpinned; the next request
// starts a new process and pins the model again.
func TestIdleTTLStopsRuntimeAndNextRequestColdStarts(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	prof := profile(t)
	prof.HealthInterval = 20 * time.Millisecond
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: prof, IdleTTL: 300 * time.Millisecond})

	first := chat(t, g, "tiny")
	if !modelPinned(t, g.cache, a.manifest.Digest) {
		t.Fatal("running model is not pinned")
	}
	// The gateway's own calls to the runtime (a metrics scrape) go through
	// Peek, which counts no use either.
	m, err := g.fleet.Model("tiny")
	if err != nil {
		t.Fatal(err)
	}
	var st modelStatus
	waitFor(t, "idle_ttl to stop the runtime while it is peeked at", func() bool {
		if b, ok := m.Peek(); ok {
			if resp, err := http.Get(b.Process.URL() + "/stats"); err == nil {
				resp.Body.Close()
			}
		}
		st = getStatus(t, g, "tiny")
		return st.State == "cold"
	})
	if st.PID != 0 || st.Digest != "" || st.IdleTTL != "300ms" {
		t.Errorf("cold model status = %+v", st)
	}
	if !processGone(first) {
		t.Errorf("runtime %d still running after idle_ttl", first)
	}
	if modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("model still pinned after its runtime stopped")
	}

	second := chat(t, g, "tiny")
	if second == first {
		t.Errorf("served by the stopped process %d", first)
	}
	if !modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("model started again is not pinned")
	}
}

// TestStreamLongerThanIdleTTLIsNotCut: a request in flight keeps its
// runtime alive however long it takes; idle_ttl counts from its end.
func TestStreamLongerThanIdleTTLIsNotCut(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--chunks", "4", "--release-timeout", "60s"), IdleTTL: 200 * time.Millisecond})

	events := stream(t, g, "tiny")
	time.Sleep(time.Second) // five idle_ttls with the stream open
	if st := getStatus(t, g, "tiny"); st.State != "ready" || st.InFlight != 1 {
		t.Fatalf("model with a stream open = %s with %d in flight, want ready with 1", st.State, st.InFlight)
	}
	releaseStreams(t, g, "tiny")
	if rest := drainEvents(events); len(rest) != 4 || rest[3] != "[DONE]" {
		t.Fatalf("stream cut: rest = %q", rest)
	}
	waitState(t, g, "tiny", "cold")
}

// TestMaxRunningStopsLeastRecentlyUsedIdleModel: with max_running 2,
// starting a third model stops the least recently used idle one; with
// max_running 1 and the running model busy, the start waits until its
// request ends.
func TestMaxRunningStopsLeastRecentlyUsedIdleModel(t *testing.T) {
	reg := testregistry.Start(t)
	art := pushModel(t, reg, "models/tiny", "v1")
	prof := profile(t, "--release-timeout", "60s")
	spec := func(name string) gateway.ModelSpec { return gateway.ModelSpec{Name: name, Ref: art.ref, Profile: prof} }

	t.Run("lru", func(t *testing.T) {
		g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{MaxRunning: 2}}, spec("a"), spec("b"), spec("c"))
		pidA := chat(t, g, "a")
		pidB := chat(t, g, "b")
		if again := chat(t, g, "a"); again != pidA {
			t.Fatalf("a restarted (%d, then %d) below max_running", pidA, again)
		}
		chat(t, g, "c") // b is the least recently used
		if st := getStatus(t, g, "b"); st.State != "cold" || !processGone(pidB) {
			t.Errorf("b = %s (pid %d gone: %v), want stopped for c", st.State, pidB, processGone(pidB))
		}
		if st := getStatus(t, g, "a"); st.State != "ready" || st.PID != pidA {
			t.Errorf("a = %s pid %d, want still ready as %d", st.State, st.PID, pidA)
		}
	})

	t.Run("abandoned wait", func(t *testing.T) {
		// Every caller of a start waiting for a slot leaves: the start
		// gives up and the model goes back to cold.
		g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{MaxRunning: 1}}, spec("a"), spec("b"))
		events := stream(t, g, "a")
		ctx, cancel := context.WithCancel(t.Context())
		left := make(chan struct{})
		go func() {
			defer close(left)
			req, _ := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"b"}`))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Errorf("b answered %s while a held the only slot", resp.Status)
			}
		}()
		waitState(t, g, "b", "waiting")
		cancel()
		<-left
		waitState(t, g, "b", "cold")
		if st := getStatus(t, g, "a"); st.State != "ready" {
			t.Errorf("a = %s, want ready: nobody needs its slot now", st.State)
		}
		releaseStreams(t, g, "a")
		drainEvents(events)
	})

	t.Run("busy model is not stopped", func(t *testing.T) {
		g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{MaxRunning: 1}}, spec("a"), spec("b"))
		events := stream(t, g, "a")
		pidA := getStatus(t, g, "a").PID
		answered := make(chan int, 1)
		go func() {
			resp, data := do(t, "POST", g.url+"/v1/chat/completions", `{"model":"b"}`)
			if resp.StatusCode != 200 {
				t.Errorf("b: %d %s", resp.StatusCode, data)
			}
			answered <- resp.StatusCode
		}()
		waitState(t, g, "b", "waiting")
		if st := getStatus(t, g, "a"); st.State != "ready" || st.InFlight != 1 {
			t.Fatalf("a = %+v, want ready with its stream", st)
		}
		releaseStreams(t, g, "a")
		if rest := drainEvents(events); len(rest) == 0 || rest[len(rest)-1] != "[DONE]" {
			t.Errorf("a's stream cut: %q", rest)
		}
		<-answered
		if st := getStatus(t, g, "a"); st.State != "cold" || !processGone(pidA) {
			t.Errorf("a = %s, want stopped for b once idle", st.State)
		}
		if st := getStatus(t, g, "b"); st.State != "ready" {
			t.Errorf("b = %s, want ready", st.State)
		}
	})
}

// TestGroupMaxRunning: a group's max_running stops only the group's
// models; a model outside it keeps running.
func TestGroupMaxRunning(t *testing.T) {
	reg := testregistry.Start(t)
	art := pushModel(t, reg, "models/tiny", "v1")
	prof := profile(t)
	g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{GroupMaxRunning: map[string]int{"gpu": 1}}},
		gateway.ModelSpec{Name: "a", Ref: art.ref, Profile: prof, Group: "gpu"},
		gateway.ModelSpec{Name: "b", Ref: art.ref, Profile: prof, Group: "gpu"},
		gateway.ModelSpec{Name: "c", Ref: art.ref, Profile: prof})
	chat(t, g, "a")
	pidC := chat(t, g, "c")
	chat(t, g, "b")
	if st := getStatus(t, g, "a"); st.State != "cold" {
		t.Errorf("a = %s, want stopped for b (same group)", st.State)
	}
	if st := getStatus(t, g, "c"); st.State != "ready" || st.PID != pidC || st.Group != "" {
		t.Errorf("c = %+v, want still ready: it is in no group", st)
	}
	if st := getStatus(t, g, "b"); st.State != "ready" || st.Group != "gpu" {
		t.Errorf("b = %+v", st)
	}
}

// TestStartupTimeoutCountsFromProcessStart: a start that waits for a slot
// longer than its runtime's startup_timeout still succeeds: the timeout
// counts from the process start, not from the request.
func TestStartupTimeoutCountsFromProcessStart(t *testing.T) {
	reg := testregistry.Start(t)
	art := pushModel(t, reg, "models/tiny", "v1")
	slow := profile(t, "--start-delay", "100ms")
	slow.StartupTimeout = time.Second
	g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{MaxRunning: 1}},
		gateway.ModelSpec{Name: "a", Ref: art.ref, Profile: profile(t, "--release-timeout", "60s")},
		gateway.ModelSpec{Name: "b", Ref: art.ref, Profile: slow})
	events := stream(t, g, "a")
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		if resp, data := do(t, "POST", g.url+"/v1/chat/completions", `{"model":"b"}`); resp.StatusCode != 200 {
			t.Errorf("b after waiting for a slot longer than its startup_timeout: %d %s", resp.StatusCode, data)
		}
	}()
	waitState(t, g, "b", "waiting")
	time.Sleep(2 * slow.StartupTimeout)
	releaseStreams(t, g, "a")
	drainEvents(events)
	<-answered
}

// TestCrashRestartsWithBackoffThenCrashLoopAnswers503: a runtime that
// exits on its own is restarted by the next request after the backoff;
// after max_failures failures in the window the model is failed and
// requests get 503 model_failed with Retry-After until the backoff ends,
// then the next request starts it again.
func TestCrashRestartsWithBackoffThenCrashLoopAnswers503(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	policy := gateway.RestartPolicy{Backoff: 2 * time.Second, MaxBackoff: time.Minute, MaxFailures: 2, Window: 10 * time.Minute}
	g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{Restart: policy}}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	crash := func() {
		t.Helper()
		resp, data := do(t, "POST", g.url+"/models/tiny/crash", "")
		checkError(t, resp, data, 502, "runtime_error")
	}
	first := chat(t, g, "tiny")
	crash()
	st := waitState(t, g, "tiny", "failed")
	if st.Failures != 1 || st.CrashLoop || st.RetryAt == nil || !strings.Contains(st.Error, "exit status 2") || st.LastError != st.Error {
		t.Fatalf("after one crash: %+v", st)
	}
	// Below max_failures: the request waits for the backoff and is served.
	second := chat(t, g, "tiny")
	if second == first {
		t.Fatalf("served by the crashed process")
	}
	st = getStatus(t, g, "tiny")
	if st.State != "ready" || st.Restarts != 1 || st.Error != "" || !strings.Contains(st.LastError, "exit status 2") {
		t.Fatalf("after the restart: %+v", st)
	}

	crash()
	st = waitState(t, g, "tiny", "failed")
	if st.Failures != 2 || !st.CrashLoop || st.RetryAt == nil {
		t.Fatalf("after two crashes: %+v", st)
	}
	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 503, "model_failed", `"tiny"`, "2 runtime failures within 10m0s", "exit status 2")
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 4 {
		t.Errorf("Retry-After %q, want the rest of the 4s backoff", resp.Header.Get("Retry-After"))
	}

	// Once the backoff is over, a request starts it again.
	var pid int
	waitFor(t, "a start after the backoff", func() bool {
		resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
		if resp.StatusCode == 200 {
			pid = decode[echoReply](t, data).PID
			return true
		}
		checkError(t, resp, data, 503, "model_failed")
		time.Sleep(200 * time.Millisecond)
		return false
	})
	if pid == second {
		t.Errorf("served by the crashed process")
	}
	if st := getStatus(t, g, "tiny"); st.State != "ready" || st.Restarts != 2 || st.CrashLoop {
		t.Errorf("after recovery: %+v", st)
	}
}

// TestHungRuntimeIsKilledAndRestarted: a runtime whose health path stops
// answering while it runs is killed after health_failures polls, and the
// next request starts a new one.
func TestHungRuntimeIsKilledAndRestarted(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	prof := profile(t)
	prof.HealthInterval, prof.HealthTimeout, prof.HealthFailures = 50*time.Millisecond, 200*time.Millisecond, 2
	g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{Restart: gateway.RestartPolicy{Backoff: 100 * time.Millisecond}}},
		gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: prof})

	first := chat(t, g, "tiny")
	if resp, data := do(t, "POST", g.url+"/models/tiny/hang", ""); resp.StatusCode != 200 {
		t.Fatalf("hang: %d %s", resp.StatusCode, data)
	}
	st := waitState(t, g, "tiny", "failed")
	if !strings.Contains(st.Error, "runtime hung") || !strings.Contains(st.Error, "/health did not answer 200 2 times in a row") || st.Failures != 1 {
		t.Errorf("hung model status = %+v", st)
	}
	if !processGone(first) {
		t.Errorf("hung runtime %d still running", first)
	}
	if modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("killed runtime's model still pinned")
	}
	if second := chat(t, g, "tiny"); second == first {
		t.Errorf("served by the hung process")
	}
	if st := getStatus(t, g, "tiny"); st.State != "ready" || st.Restarts != 1 {
		t.Errorf("after the restart: %+v", st)
	}
}

// TestPreloadStartsAtBootAndReadyzWaitsForIt: a preload model starts with
// the gateway, in the background: /healthz answers at once, /readyz 503
// until the model is ready, then 200; no request was needed.
func TestPreloadStartsAtBootAndReadyzWaitsForIt(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	readyFile := filepath.Join(t.TempDir(), "ready")
	g := startGateway(t, reg, gatewayOptions{},
		gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--ready-file", readyFile), Preload: true},
		gateway.ModelSpec{Name: "other", Ref: a.ref, Profile: profile(t)})

	if resp, _ := do(t, "GET", g.url+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz = %d during the preload, want 200", resp.StatusCode)
	}
	waitState(t, g, "tiny", "starting")
	resp, data := do(t, "GET", g.url+"/readyz", "")
	if resp.StatusCode != 503 || !strings.Contains(string(data), `"waiting":["tiny"]`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("/readyz during the preload = %d %s", resp.StatusCode, data)
	}
	if st := getStatus(t, g, "other"); st.State != "cold" || st.Preload {
		t.Errorf("other = %+v, want cold: it does not preload", st)
	}
	if err := os.WriteFile(readyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz to answer 200", func() bool {
		resp, _ := do(t, "GET", g.url+"/readyz", "")
		return resp.StatusCode == 200
	})
	if st := getStatus(t, g, "tiny"); st.State != "ready" || !st.Preload {
		t.Errorf("preloaded model = %+v", st)
	}
	_, data = do(t, "GET", g.url+"/models/tiny/stats", "")
	if !strings.Contains(string(data), `"requests":0`) {
		t.Errorf("runtime stats %s: a preload sends no request", data)
	}
	g.stop(t)
}

// TestAdminLoadAndUnload: the admin API wants the token (401 without, 403
// with another, before it says whether the model exists), loads a model
// as a request would, and unloads it: the runtime stops, the pin goes.
func TestAdminLoadAndUnload(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{adminToken: "s3cret"}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	admin := func(path, token string) (*http.Response, []byte) {
		t.Helper()
		return send(t, adminRequest(t, g, path, token))
	}
	resp, data := admin("/admin/models/tiny/load", "")
	checkError(t, resp, data, 401, "unauthorized", "Bearer")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
	resp, data = admin("/admin/models/nope/load", "")
	checkError(t, resp, data, 401, "unauthorized")
	resp, data = admin("/admin/models/tiny/load", "wrong")
	checkError(t, resp, data, 403, "forbidden")
	if strings.Contains(string(data), "s3cret") {
		t.Errorf("answer shows the token: %s", data)
	}
	resp, data = admin("/admin/models/nope/unload", "s3cret")
	checkError(t, resp, data, 404, "model_not_found", `"nope"`)
	if st := getStatus(t, g, "tiny"); st.State != "cold" {
		t.Fatalf("refused load started the model: %+v", st)
	}

	resp, data = admin("/admin/models/tiny/load", "s3cret")
	if resp.StatusCode != 200 {
		t.Fatalf("load: %d %s", resp.StatusCode, data)
	}
	loaded := decode[struct {
		Action string      `json:"action"`
		Model  modelStatus `json:"model"`
	}](t, data)
	if loaded.Action != "load" || loaded.Model.State != "ready" || loaded.Model.PID == 0 || loaded.Model.Digest != a.manifest.Digest.String() {
		t.Fatalf("load answered %s", data)
	}
	resp, data = admin("/admin/models/tiny/unload", "s3cret")
	if resp.StatusCode != 200 || decode[struct {
		Model modelStatus `json:"model"`
	}](t, data).Model.State != "cold" {
		t.Fatalf("unload: %d %s", resp.StatusCode, data)
	}
	if !processGone(loaded.Model.PID) || modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("after unload: runtime gone %v, model pinned %v", processGone(loaded.Model.PID), modelPinned(t, g.cache, a.manifest.Digest))
	}
	// Unloading a model without a runtime does nothing; a request starts
	// it again.
	if resp, data = admin("/admin/models/tiny/unload", "s3cret"); resp.StatusCode != 200 {
		t.Errorf("second unload: %d %s", resp.StatusCode, data)
	}
	chat(t, g, "tiny")
}

// TestAdminUnloadDrains: an unload waits for the requests in flight, which
// end normally; past the unload grace, those left are cut.
func TestAdminUnloadDrains(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	spec := gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--chunks", "3", "--release-timeout", "60s")}
	unload := func(g *gatewayUnderTest) <-chan string {
		done := make(chan string, 1)
		req := adminRequest(t, g, "/admin/models/tiny/unload", "tok")
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- err.Error()
				return
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			done <- strconv.Itoa(resp.StatusCode) + " " + string(data)
		}()
		return done
	}

	t.Run("drained", func(t *testing.T) {
		g := startGateway(t, reg, gatewayOptions{adminToken: "tok", unloadGrace: time.Minute}, spec)
		events := stream(t, g, "tiny")
		done := unload(g)
		st := waitState(t, g, "tiny", "draining")
		// A request arriving now waits for the unload, then starts a new
		// runtime.
		later := make(chan int, 1)
		go func() {
			resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
			if resp.StatusCode != 200 {
				t.Errorf("request during the drain: %d %s", resp.StatusCode, data)
				later <- 0
				return
			}
			later <- decode[echoReply](t, data).PID
		}()
		// That is why the test releases the stream at the runtime itself.
		if resp, data := do(t, "POST", "http://127.0.0.1:"+strconv.Itoa(st.Port)+"/release", ""); resp.StatusCode != 200 || !strings.Contains(string(data), `"released":1`) {
			t.Fatalf("release at the runtime: %d %s", resp.StatusCode, data)
		}
		if rest := drainEvents(events); len(rest) != 3 || rest[2] != "[DONE]" {
			t.Errorf("stream in flight during the unload: rest = %q, want it complete", rest)
		}
		if got := <-done; !strings.HasPrefix(got, "200 ") || strings.Contains(got, `"cut"`) {
			t.Errorf("unload answered %s", got)
		}
		if pid := <-later; pid == st.PID || pid == 0 {
			t.Errorf("request during the drain served by pid %d; the unloaded runtime was %d", pid, st.PID)
		}
		if !processGone(st.PID) {
			t.Errorf("unloaded runtime %d still running", st.PID)
		}
	})

	t.Run("grace over", func(t *testing.T) {
		g := startGateway(t, reg, gatewayOptions{adminToken: "tok", unloadGrace: 300 * time.Millisecond}, spec)
		events := stream(t, g, "tiny")
		got := <-unload(g)
		if !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"cut":1`) {
			t.Errorf("unload answered %s, want one request cut", got)
		}
		if rest := drainEvents(events); len(rest) != 0 {
			t.Errorf("stream after the grace: %q, want it cut", rest)
		}
	})
}

// TestAdminOffWithoutToken: without admin_token_file the admin routes are
// answered 404 admin_disabled, token or not.
func TestAdminOffWithoutToken(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})
	resp, data := send(t, adminRequest(t, g, "/admin/models/tiny/load", "anything"))
	checkError(t, resp, data, 404, "admin_disabled", "admin_token_file")
	if st := getStatus(t, g, "tiny"); st.State != "cold" {
		t.Errorf("model = %s after a refused load", st.State)
	}
}

// TestModelStatusRoute: GET /models/{name}, exactly, is the model's
// status (also in GET /v1/models); other methods on it, and everything
// below /models/{name}/, reach the runtime.
func TestModelStatusRoute(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t), IdleTTL: time.Hour, Group: "g"})

	st := getStatus(t, g, "tiny")
	if st.ID != "tiny" || st.Object != "model" || st.Ref != a.ref || st.State != "cold" || st.PID != 0 || st.Since.IsZero() || st.IdleTTL != "1h0m0s" || st.Group != "g" {
		t.Errorf("cold status = %+v", st)
	}
	before := time.Now().UTC().Add(-time.Second)
	pid := chat(t, g, "tiny")
	st = getStatus(t, g, "tiny")
	if st.State != "ready" || st.PID != pid || st.Port == 0 || st.Digest != a.manifest.Digest.String() || st.Since.Before(before) ||
		st.InFlight != 0 || st.LastUsed == nil || st.Restarts != 0 || st.Error != "" || st.LastError != "" {
		t.Errorf("ready status = %+v", st)
	}
	// The runtime answers on the port the status shows.
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(st.Port) + "/health"); err != nil || resp.StatusCode != 200 {
		t.Errorf("runtime on port %d: %v", st.Port, err)
	} else {
		resp.Body.Close()
	}

	_, data := do(t, "GET", g.url+"/v1/models", "")
	list := decode[struct {
		Data []modelStatus `json:"data"`
	}](t, data)
	if len(list.Data) != 1 || list.Data[0].PID != pid || list.Data[0].State != "ready" || list.Data[0].Since != st.Since {
		t.Errorf("GET /v1/models = %s", data)
	}

	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/models/tiny", "/"},
		{"GET", "/models/tiny/", "/"},
		{"GET", "/models/tiny/v1/models", "/v1/models"},
	} {
		resp, data := do(t, tc.method, g.url+tc.path, "")
		if resp.StatusCode != 200 {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, data)
			continue
		}
		if r := decode[echoReply](t, data); r.Path != tc.want || r.Method != tc.method {
			t.Errorf("%s %s reached the runtime as %s %s, want %s", tc.method, tc.path, r.Method, r.Path, tc.want)
		}
	}
	resp, data := do(t, "GET", g.url+"/models/nope", "")
	checkError(t, resp, data, 404, "model_not_found", `"nope"`)
}

// send does req and returns its answer, read whole.
func send(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, data
}

// adminRequest is a POST to the admin API with token ("" sends none).
func adminRequest(t *testing.T, g *gatewayUnderTest, path, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// TestFailedPreloadIsRetriedAndKeepsTheGatewayUnready: a preload whose
// runtime cannot start is tried again by itself, with the backoff, and
// /readyz stays 503 meanwhile.
func TestFailedPreloadIsRetriedAndKeepsTheGatewayUnready(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{fleet: gateway.FleetOptions{Restart: gateway.RestartPolicy{Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}}},
		gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--exit-at-start", "3"), Preload: true})
	var st modelStatus
	waitFor(t, "the preload to be tried again", func() bool {
		st = getStatus(t, g, "tiny")
		return st.Restarts >= 1 && st.State == "failed"
	})
	if !strings.Contains(st.Error, "exit status 3") {
		t.Errorf("failed preload status = %+v", st)
	}
	resp, data := do(t, "GET", g.url+"/readyz", "")
	if resp.StatusCode != 503 || !strings.Contains(string(data), `"waiting":["tiny"]`) {
		t.Errorf("/readyz with a failing preload = %d %s", resp.StatusCode, data)
	}
}
