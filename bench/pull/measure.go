package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// The scenarios, in the order they run.
const (
	scenarioLoopback  = "loopback"
	scenarioThrottled = "throttled"
)

// The clients, as printed. The targets are judged on clientModelgate, its
// defaults; clientModelgateNoSync is the same pull with cache.sync: false
// (no fsync of the blobs it commits), for information.
const (
	clientOras            = "oras"
	clientModelgate       = "modelgate"
	clientModelgateNoSync = "modelgate sync off"
)

// clients is every client, in the order of the first run; later runs rotate
// it.
var clients = []string{clientOras, clientModelgate, clientModelgateNoSync}

// results is everything one benchmark measured.
type results struct {
	limit    limit
	capacity capacity // the throttled path's, both ways; unmeasured without the throttled scenario
	rssFloor int64    // peak RSS the wrapper reports for `true`: the least any row can show
	rows     []row
}

// row is one scenario and model: every pull of each client.
type row struct {
	scenario        string
	model           model
	oras            []exit
	modelgate       []exit
	modelgateNoSync []exit
}

// add records e as one of client's pulls.
func (r *row) add(client string, e exit) {
	switch client {
	case clientOras:
		r.oras = append(r.oras, e)
	case clientModelgate:
		r.modelgate = append(r.modelgate, e)
	default:
		r.modelgateNoSync = append(r.modelgateNoSync, e)
	}
}

// benchmark starts the registry, makes and pushes the models, measures the
// machine's limit and, with the throttled scenario, the capacity of the
// throttled path, and pulls every model in every scenario with every client.
// Everything it starts is stopped and everything it writes is under work.
func benchmark(ctx context.Context, cfg benchConfig, work string) (results, error) {
	regDir := filepath.Join(work, "registry")
	if err := os.MkdirAll(regDir, 0o755); err != nil {
		return results{}, fmt.Errorf("create registry directory: %w", err)
	}
	reg, err := startRegistry(ctx, cfg.registry, regDir)
	if err != nil {
		return results{}, err
	}
	defer reg.stop()
	models, err := makeModels(ctx, cfg, filepath.Join(work, "models"), reg.addr)
	if err != nil {
		return results{}, err
	}

	fmt.Fprintf(os.Stderr, "measuring the machine's limit (%s written with fsync, %s hashed), %d times\n",
		formatBytes(cfg.limitSize), formatBytes(cfg.limitSize), cfg.runs)
	var res results
	if res.limit, err = measureLimit(ctx, work, cfg.limitSize, cfg.runs); err != nil {
		return results{}, err
	}

	if trueBin, err := exec.LookPath("true"); err == nil {
		if e, err := runChild(ctx, time.Minute, work, trueBin); err == nil {
			res.rssFloor = e.maxRSS
		}
	}

	px, err := startProxy(reg.addr, link{rate: cfg.rate, latency: cfg.latency})
	if err != nil {
		return results{}, err
	}
	defer px.close()
	hosts := map[string]string{scenarioLoopback: reg.addr, scenarioThrottled: px.addr()}
	if slices.Contains(cfg.scenarios, scenarioThrottled) {
		fmt.Fprintf(os.Stderr, "measuring the throttled path's capacity (%d concurrent ranged GETs, %s in all, through the proxy; "+
			"bodies discarded, then written and hashed), %d times each\n", capacityConns, formatBytes(models[0].bytes), cfg.runs)
		if res.capacity, err = measureCapacity(ctx, work, reg.addr, px.addr(), models[0], cfg.runs); err != nil {
			return results{}, err
		}
	}

	for _, sc := range cfg.scenarios {
		for _, m := range models {
			r := row{scenario: sc, model: m}
			for i := range cfg.runs {
				// Rotate which client goes first, so that none always
				// follows the same one's writes.
				for j := range clients {
					client := clients[(i+j)%len(clients)]
					e, err := pullOnce(ctx, cfg, work, client, hosts[sc], m)
					if err != nil {
						return results{}, fmt.Errorf("%s %s, run %d, %s: %w", sc, m.name, i+1, client, err)
					}
					fmt.Fprintf(os.Stderr, "%-9s %-6s run %d %-18s %7.2f s %8.1f MiB/s  peak RSS %s\n",
						sc, m.name, i+1, client, e.wall.Seconds(), mibPerSec(m.bytes, e.wall), formatBytes(e.maxRSS))
					r.add(client, e)
				}
			}
			res.rows = append(res.rows, r)
		}
	}
	return res, nil
}

// pullOnce pulls m from host with client into a fresh directory under work,
// checks that the files written hold the model's bytes, and deletes them.
func pullOnce(ctx context.Context, cfg benchConfig, work, client, host string, m model) (exit, error) {
	dir, err := os.MkdirTemp(work, "pull-")
	if err != nil {
		return exit{}, fmt.Errorf("pull: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	ref := host + "/" + m.repo + ":v1"
	var e exit
	switch client {
	case clientOras:
		e, err = runChild(ctx, cfg.pullTimeout, dir, cfg.oras, orasArgs(ref, out)...)
	default:
		cfgPath := filepath.Join(dir, "modelgate.yaml")
		syncBlobs := client != clientModelgateNoSync
		if err := os.WriteFile(cfgPath, []byte(modelgateConfig(m.name, ref, host, out, syncBlobs)), 0o644); err != nil {
			return exit{}, fmt.Errorf("pull: write config: %w", err)
		}
		e, err = runChild(ctx, cfg.pullTimeout, dir, cfg.modelgate, modelgateArgs(cfgPath, m.name)...)
	}
	if err != nil {
		return exit{}, err
	}
	written, err := bytesUnder(out)
	if err != nil {
		return exit{}, fmt.Errorf("pull: %w", err)
	}
	if written < m.bytes {
		return exit{}, fmt.Errorf("%s pull: %w: %d of %d bytes under %s", client, errShortPull, written, m.bytes, out)
	}
	return e, nil
}

// orasArgs is the oras command line: its defaults otherwise (3 concurrent
// blobs).
func orasArgs(ref, out string) []string {
	return []string{"pull", "--plain-http", ref, "-o", out}
}

// modelgateArgs is the modelgate command line for a pull of the model named
// name in the configuration at cfgPath.
func modelgateArgs(cfgPath, name string) []string {
	return []string{"pull", "--config", cfgPath, "--progress", "none", "--log-level", "warn", name}
}

// modelgateConfig is the least configuration that lets modelgate pull ref as
// name into cacheDir: a runtime is required but never started; the fetch
// settings are modelgate's defaults. When syncBlobs is false it adds
// cache.sync: false, so that modelgate commits blobs without fsyncing them;
// otherwise it leaves the key out (its default is true).
func modelgateConfig(name, ref, host, cacheDir string, syncBlobs bool) string {
	cache := fmt.Sprintf("{dir: %q}", cacheDir)
	if !syncBlobs {
		cache = fmt.Sprintf("{dir: %q, sync: false}", cacheDir)
	}
	return fmt.Sprintf(`models:
  - {name: %q, ref: %q, runtime: none}
runtimes:
  none: {command: ["true"]}
cache: %s
registries:
  %q: {plain_http: true}
`, name, ref, cache, host)
}

// bytesUnder is the size of the regular files under dir, each inode counted
// once (modelgate's model directory hard-links the blobs of its cache).
func bytesUnder(dir string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}

// mibPerSec is n bytes over d in MiB/s.
func mibPerSec(n int64, d time.Duration) float64 {
	return float64(n) / (1 << 20) / d.Seconds()
}
