package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"
)

const (
	// probeTimeout bounds one readiness probe.
	probeTimeout = time.Second
	// gatewayPoll is the pause between /healthz probes while a gateway
	// starts: the resolution of the start-up time, against a 50 ms target.
	gatewayPoll = 500 * time.Microsecond
	// runtimePoll is the pause between /health probes of the runtime alone:
	// faster than any gateway polls, so that the runtime's own share is not
	// overstated.
	runtimePoll = time.Millisecond
)

// probeClient makes readiness probes. Keep-alive is off, so that a probe
// never holds a connection to a server that is stopped next.
var probeClient = &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// answers200 returns a readiness check: GET url answers 200.
func answers200(url string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return resp.StatusCode == http.StatusOK
	}
}

// gateway is a running `modelgate serve`, logging JSON to logFile at its
// default level (info: one line per request).
type gateway struct {
	*child
	base    string // http://127.0.0.1:PORT
	logFile string
}

// startGateway starts `modelgate serve` with a configuration of models
// models (see fixture.gatewayConfig) and returns it once /healthz answers
// 200, with the time from exec to that answer.
func startGateway(ctx context.Context, fx *fixture, models int) (*gateway, time.Duration, error) {
	cfgPath, base, err := fx.gatewayConfig(models)
	if err != nil {
		return nil, 0, err
	}
	logFile := strings.TrimSuffix(cfgPath, ".yaml") + ".log"
	c, err := startChild(ctx, childSpec{name: "modelgate serve", path: fx.cfg.modelgate,
		args: []string{"serve", "--config", cfgPath, "--log-format", "json"}, logFile: logFile})
	if err != nil {
		return nil, 0, err
	}
	listening, err := c.waitReady(ctx, gatewayReady, gatewayPoll, answers200(base+"/healthz"))
	if err != nil {
		c.stop()
		return nil, 0, err
	}
	return &gateway{child: c, base: base, logFile: logFile}, listening, nil
}

// runtimePort reads the port of model's runtime from the gateway's log.
func (g *gateway) runtimePort(model string) (int, error) {
	recs, err := findRecords(g.logFile, model, msgReady)
	if err != nil {
		return 0, err
	}
	if p := recs[msgReady].Port; p > 0 {
		return p, nil
	}
	return 0, fmt.Errorf("read gateway log %s: %w: %q without a port", g.logFile, errNoLogRecord, msgReady)
}

// startRuntime starts the runtime alone on a free port, as the gateway
// would, and returns it once /health answers 200, with its base URL and
// the time from exec to that answer.
func startRuntime(ctx context.Context, fx *fixture) (*child, string, time.Duration, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, "", 0, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c, err := startChild(ctx, childSpec{name: "testruntime", path: fx.cfg.testruntime, args: fx.runtimeAloneArgs(port)})
	if err != nil {
		return nil, "", 0, err
	}
	ready, err := c.waitReady(ctx, gatewayReady, runtimePoll, answers200(base+"/health"))
	if err != nil {
		c.stop()
		return nil, "", 0, err
	}
	return c, base, ready, nil
}

// nginxConfig is nginx as a plain reverse proxy in front of one upstream:
// the directives a production configuration for streaming answers needs
// (keep-alive connections to the upstream, HTTP/1.1, no response
// buffering), nginx's defaults otherwise. Every path is under the prefix;
// it listens on 127.0.0.1 only. %[1]s: user line, %[2]s: prefix, %[3]d:
// upstream port, %[4]d: idle upstream connections kept per worker, %[5]d:
// listen port.
const nginxConfig = `# Written by bench/overhead: nginx as a plain reverse proxy.
%[1]sworker_processes auto;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream runtime {
        server 127.0.0.1:%[3]d;
        keepalive %[4]d;
    }
    server {
        listen 127.0.0.1:%[5]d;
        location / {
            proxy_pass http://runtime;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
`

// startNginx starts nginx in front of the runtime on upstreamPort, with
// its configuration, pid, logs and temporary files in a new directory of
// the work directory, and returns it once it answers GET /health (the
// runtime's) with 200.
func startNginx(ctx context.Context, fx *fixture, upstreamPort int) (*child, string, error) {
	prefix := fx.path("nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return nil, "", fmt.Errorf("start nginx: %w", err)
	}
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, "", err
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx would run its workers as nobody, who cannot enter
		// the work directory; as anyone else, it runs them as that user.
		user = "user root;\n"
	}
	conf := filepath.Join(prefix, "nginx.conf")
	idle := max(slices.Max(fx.cfg.clients), 16)
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConfig, user, prefix, upstreamPort, idle, port), 0o644); err != nil {
		return nil, "", fmt.Errorf("start nginx: %w", err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	c, err := startChild(ctx, childSpec{name: "nginx", path: fx.cfg.nginx,
		args: []string{"-e", filepath.Join(prefix, "error.log"), "-c", conf, "-p", prefix, "-g", "daemon off;"},
		// SIGTERM: the master stops its workers and waits for them; a
		// SIGKILL would leave them behind.
		stopSignal: syscall.SIGTERM, deathSignal: syscall.SIGTERM})
	if err != nil {
		return nil, "", err
	}
	if _, err := c.waitReady(ctx, gatewayReady, runtimePoll, answers200(base+"/health")); err != nil {
		c.stop()
		return nil, "", err
	}
	return c, base, nil
}
