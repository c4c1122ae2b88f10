package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/testregistry"
)

// TestServePreloadsAndAdminUnloads runs the real binary with preload and an
// admin token file: the model is started at boot without a request
// (/readyz waits for it), and the admin API, with the file's token,
// unloads and loads it again.
func TestServePreloadsAndAdminUnloads(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushTiny(t, reg)
	addr := freeAddr(t)
	cfg := writeConfig(t, reg, addr, ref)
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yaml := "admin_token_file: " + tokenFile + "\n" + strings.Replace(string(data), "    runtime: testrt\n", "    runtime: testrt\n    preload: true\n", 1)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	startBinary(t, "serve", "--config", cfg)
	base := "http://" + addr
	waitHealthy(t, base+"/readyz")

	var st struct {
		State   string `json:"state"`
		PID     int    `json:"pid"`
		Preload bool   `json:"preload"`
	}
	resp, err := http.Get(base + "/models/tiny")
	if err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, resp, &st)
	if st.State != "ready" || st.PID == 0 || !st.Preload {
		t.Fatalf("preloaded model = %+v", st)
	}

	admin := func(action, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/admin/models/tiny/"+action, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := admin("unload", "t0ke"); resp.StatusCode != 403 {
		resp.Body.Close()
		t.Errorf("unload with another token = %d, want 403", resp.StatusCode)
	}
	var out struct {
		Model struct {
			State string `json:"state"`
			PID   int    `json:"pid"`
		} `json:"model"`
	}
	decodeJSON(t, admin("unload", "t0ken"), &out)
	if out.Model.State != "cold" || processAlive(st.PID) {
		t.Fatalf("after unload: %+v, runtime %d alive %v", out.Model, st.PID, processAlive(st.PID))
	}
	decodeJSON(t, admin("load", "t0ken"), &out)
	if out.Model.State != "ready" || out.Model.PID == 0 || out.Model.PID == st.PID {
		t.Fatalf("after load: %+v", out.Model)
	}
}
