package gateway_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
)

const chatBody = `{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"temperature":0}`

func TestColdChatRequestIsServedEndToEnd(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if got := resp.Header.Get(gateway.DigestHeader); got != a.manifest.Digest.String() {
		t.Errorf("%s = %q, want %q", gateway.DigestHeader, got, a.manifest.Digest)
	}
	reply := decode[echoReply](t, data)
	if reply.Body != chatBody {
		t.Errorf("runtime received body %q, want it byte for byte: %q", reply.Body, chatBody)
	}
	if reply.Path != "/v1/chat/completions" || reply.Method != "POST" {
		t.Errorf("runtime received %s %s", reply.Method, reply.Path)
	}
	if reply.ModelFileSHA256 != a.weightsSHA256() {
		t.Errorf("runtime's {{.ModelFile}} hashes to %s, want the weights %s", reply.ModelFileSHA256, a.weightsSHA256())
	}
	slices.Sort(reply.ModelFiles)
	if want := []string{"config/params.json", "model.bin"}; !slices.Equal(reply.ModelFiles, want) {
		t.Errorf("model directory holds %v, want %v", reply.ModelFiles, want)
	}
	if reply.Headers["X-Request-Id"] == "" {
		t.Errorf("runtime saw no X-Request-Id header")
	}

	// The blob in the cache is what the registry holds, and the model file
	// is a hard link to it.
	blob := filepath.Join(g.cache, "blobs", "sha256", digest.FromBytes(a.layers[0].Data).Encoded())
	bi, err := os.Stat(blob)
	if err != nil {
		t.Fatalf("blob not in cache: %v", err)
	}
	fi, err := os.Stat(filepath.Join(g.cache, "models", "sha256", a.manifest.Digest.Encoded(), "model.bin"))
	if err != nil {
		t.Fatalf("model file not laid out: %v", err)
	}
	if !os.SameFile(bi, fi) {
		t.Errorf("model.bin is not a hard link to its blob")
	}

	resp, data = do(t, "GET", g.url+"/v1/models", "")
	list := decode[struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, State, Digest, Ref string
		} `json:"data"`
	}](t, data)
	if resp.StatusCode != 200 || list.Object != "list" || len(list.Data) != 1 {
		t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, data)
	}
	if m := list.Data[0]; m.ID != "tiny" || m.Object != "model" || m.State != "ready" || m.Digest != a.manifest.Digest.String() || m.Ref != a.ref {
		t.Errorf("GET /v1/models entry = %+v", m)
	}
	if resp, _ := do(t, "GET", g.url+"/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("GET /healthz = %d", resp.StatusCode)
	}
}

func TestConcurrentColdRequestsShareOneDownloadAndOneRuntime(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	// A slow start keeps the model cold while all ten requests arrive.
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--start-delay", "300ms")})
	reg.ResetRequests()

	const clients = 10
	var wg sync.WaitGroup
	pids := make([]int, clients)
	errs := make([]string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(g.url+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","prompt":"x"}`))
			if err != nil {
				errs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var buf strings.Builder
			_, _ = bufio.NewReader(resp.Body).WriteTo(&buf)
			if resp.StatusCode != 200 {
				errs[i] = buf.String()
				return
			}
			pids[i] = decode[echoReply](t, []byte(buf.String())).PID
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("client %d: %s", i, e)
		}
	}
	for _, l := range a.layers {
		if n := reg.Count("GET", "/blobs/"+digest.FromBytes(l.Data).String()); n != 1 {
			t.Errorf("blob %s (%s) downloaded %d times, want 1", l.Title, digest.FromBytes(l.Data), n)
		}
	}
	for i, pid := range pids {
		if pid != pids[0] {
			t.Errorf("client %d served by runtime pid %d, client 0 by %d: want one runtime process", i, pid, pids[0])
		}
	}
}

func TestRestartServesFromCacheWithoutDownloading(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	cacheDir := t.TempDir()
	spec := gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)}

	first := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	if resp, data := do(t, "POST", first.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("first gateway: %d %s", resp.StatusCode, data)
	}
	first.stop(t)

	reg.ResetRequests()
	second := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	resp, data := do(t, "POST", second.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("second gateway: %d %s", resp.StatusCode, data)
	}
	if reply := decode[echoReply](t, data); reply.ModelFileSHA256 != a.weightsSHA256() {
		t.Errorf("served from cache with model file %s, want %s", reply.ModelFileSHA256, a.weightsSHA256())
	}
	if n := reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("restart downloaded %d blobs, want 0 (requests: %v)", n, reg.Requests())
	}
}

func TestPathRoutingForwardsRestAndQuery(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	resp, data := do(t, "PUT", g.url+"/models/tiny/v2/infer/run?batch=2&x=a%20b", `{"inputs":[1,2]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	reply := decode[echoReply](t, data)
	if reply.Method != "PUT" || reply.Path != "/v2/infer/run" || reply.Query != "batch=2&x=a%20b" || reply.Body != `{"inputs":[1,2]}` {
		t.Errorf("runtime received %s %s ? %s body %q", reply.Method, reply.Path, reply.Query, reply.Body)
	}
	if resp.Header.Get(gateway.DigestHeader) != a.manifest.Digest.String() {
		t.Errorf("path route lacks %s", gateway.DigestHeader)
	}
}

// TestStreamingReachesClientBeforeRuntimeFinishes reads the first SSE event
// through the gateway while the runtime is provably still holding the rest:
// the runtime sends them only after /release, which the test calls after it
// has the first event.
func TestStreamingReachesClientBeforeRuntimeFinishes(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--chunks", "4", "--release-timeout", "60s")})

	resp, err := http.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"tiny","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	events := sseEvents(resp)
	if first := <-events; !strings.Contains(first, `"index":0`) {
		t.Fatalf("first event %q", first)
	}
	// The runtime still holds events 1..3: releasing finds our stream waiting.
	_, data := do(t, "POST", g.url+"/models/tiny/release", "")
	if !strings.Contains(string(data), `"released":1`) {
		t.Fatalf("release answered %s: the stream was not waiting in the runtime", data)
	}
	var rest []string
	for e := range events {
		rest = append(rest, e)
	}
	if len(rest) != 4 || rest[3] != "[DONE]" || !strings.Contains(rest[2], `"index":3`) {
		t.Errorf("rest of stream = %q", rest)
	}
}

func TestClientDisconnectCancelsUpstreamRequest(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--release-timeout", "60s")})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/chat/completions", strings.NewReader(`{"model":"tiny","stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := sseEvents(resp)
	<-events
	cancel() // the client goes away while the runtime waits
	resp.Body.Close()

	deadline := time.Now().Add(15 * time.Second)
	for {
		_, data := do(t, "GET", g.url+"/models/tiny/stats", "")
		if strings.Contains(string(data), `"cancelled":1`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runtime never saw the upstream request cancelled: %s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sseEvents yields the data of each event as it arrives.
func sseEvents(resp *http.Response) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				ch <- data
			}
		}
	}()
	return ch
}
