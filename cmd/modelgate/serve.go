package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/progress"
)

// serveCommand runs the gateway until ctx ends (SIGTERM or SIGINT), then
// shuts down gracefully: no new connections, in-flight requests get
// shutdown_grace to finish, then every runtime is stopped.
func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	_, cfg, log, err := setup(flag.NewFlagSet("serve", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, log, logLines{log: log, msg: "pull progress"}, progress.Plain)
	if err != nil {
		return err
	}
	specs, err := modelSpecs(cfg)
	if err != nil {
		return err
	}
	fleet := gateway.NewFleet(f, specs, fleetOptions(cfg, log))
	srv := gateway.New(gateway.Options{
		Fleet:           fleet,
		MaxRequestBytes: int64(cfg.MaxRequestBytes),
		Logger:          log,
		AdminToken:      string(cfg.AdminToken),
		UnloadGrace:     cfg.UnloadGrace.Std(),
	})
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	log.Info("modelgate listening", "addr", l.Addr().String(), "version", versionString(), "models", len(specs), "cache", cfg.Cache.Dir, "admin_api", cfg.AdminToken != "")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	// In the background: /healthz answers at once, /readyz once every
	// preload model has been ready.
	fleet.Preload()
	select {
	case err := <-served:
		srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace.Std().String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace.Std())
	defer cancel()
	err = srv.Shutdown(sctx)
	<-served
	if err != nil {
		log.Warn("requests cut at the end of the grace period", "error", err)
	}
	log.Info("stopped")
	return nil
}
