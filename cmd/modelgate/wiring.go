package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/progress"
	"github.com/modelgate/modelgate/runtime"
)

// newFetcher opens the cache and a fetcher as the configuration says;
// download progress goes to progressOut (nil: none) in the given mode.
func newFetcher(cfg *config.Config, log *slog.Logger, progressOut io.Writer, mode progress.Mode) (*fetcher.Fetcher, error) {
	c, err := cache.Open(cfg.Cache.Dir, cache.Options{
		MaxBytes:     int64(cfg.Cache.MaxBytes),
		MinFreeBytes: int64(cfg.Cache.MinFreeBytes),
		NoSync:       !cfg.Cache.SyncBlobs(),
		Logger:       log,
	})
	if err != nil {
		return nil, err
	}
	return fetcher.New(c, fetcher.Options{
		Client:            newOCIClient(cfg, log),
		Concurrency:       cfg.Fetch.Concurrency,
		MaxManifestBytes:  int64(cfg.Fetch.MaxManifestBytes),
		MaxBytesPerSecond: int64(cfg.Fetch.MaxBytesPerSecond),
		ReadTimeout:       cfg.Fetch.PullStallTimeout.Std(),
		Progress:          progressOut,
		ProgressMode:      mode,
		Logger:            log,
	}), nil
}

// newOCIClient is the registry client the configuration describes.
// cfg may be nil (push and inspect run without one); plainHosts are spoken
// to over HTTP in addition to those the configuration names.
func newOCIClient(cfg *config.Config, log *slog.Logger, plainHosts ...string) *oci.Client {
	plain := map[string]bool{}
	for _, h := range plainHosts {
		plain[h] = true
	}
	creds := map[string]oci.Credential{}
	mirrors := map[string][]string{}
	var registries map[string]config.Registry
	if cfg != nil {
		registries = cfg.Registries
	}
	for host, r := range registries {
		plain[host] = plain[host] || r.PlainHTTP
		if r.Username != "" {
			creds[host] = oci.Credential{Username: r.Username, Password: string(r.Password)}
		}
		if len(r.Mirrors) > 0 {
			mirrors[host] = r.Mirrors
		}
	}
	return oci.NewClient(oci.ClientOptions{PlainHTTP: plain, Credentials: creds, Mirrors: mirrors, UserAgent: "modelgate/" + versionString(), Logger: log})
}

// modelSpecs turns the configured models into the fleet's specs.
func modelSpecs(cfg *config.Config) ([]gateway.ModelSpec, error) {
	var specs []gateway.ModelSpec
	for _, m := range cfg.Models {
		r, ok := cfg.Runtimes[m.Runtime]
		if !ok {
			return nil, fmt.Errorf("model %q: runtime %q not defined", m.Name, m.Runtime)
		}
		spec := gateway.ModelSpec{Name: m.Name, Ref: m.Ref, Profile: profileOf(m.Runtime, r), Group: m.Group, Preload: m.Preload}
		if m.IdleTTL != nil {
			spec.IdleTTL = m.IdleTTL.Std()
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// fleetOptions turns the configuration's lifecycle keys into the fleet's.
func fleetOptions(cfg *config.Config, log *slog.Logger) gateway.FleetOptions {
	groups := map[string]int{}
	for name, g := range cfg.Groups {
		groups[name] = g.MaxRunning
	}
	return gateway.FleetOptions{
		Logger:          log,
		MaxRunning:      cfg.MaxRunning,
		GroupMaxRunning: groups,
		Restart: gateway.RestartPolicy{
			Backoff:     cfg.Restart.Backoff.Std(),
			MaxBackoff:  cfg.Restart.MaxBackoff.Std(),
			MaxFailures: cfg.Restart.MaxFailures,
			Window:      cfg.Restart.Window.Std(),
		},
	}
}

func profileOf(name string, r config.Runtime) runtime.Profile {
	return runtime.Profile{
		Name:           name,
		Command:        r.Command,
		Env:            r.Env,
		WorkingDir:     r.WorkingDir,
		HealthPath:     r.Health,
		ReadyStatus:    r.ReadyStatus,
		StartupTimeout: r.StartupTimeout.Std(),
		StopSignal:     config.Signals[r.StopSignal],
		StopTimeout:    r.StopTimeout.Std(),
		MaxConcurrent:  r.MaxConcurrent,
		Protocols:      r.Protocols,
		HealthTimeout:  r.HealthTimeout.Std(),
		HealthInterval: r.HealthInterval.Std(),
		HealthFailures: r.HealthFailures,
	}
}

// logLines is an io.Writer that logs each line written to it, so that the
// gateway's cold-start pulls report progress in its structured log.
type logLines struct {
	log *slog.Logger
	msg string
}

func (l logLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			l.log.Info(l.msg, "progress", line)
		}
	}
	return len(p), nil
}
