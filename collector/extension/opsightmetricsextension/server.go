package opsightmetricsextension

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/selftelemetry"
)

type server struct {
	cfg     *Config
	set     component.TelemetrySettings
	metrics *selftelemetry.Metrics

	srv  *http.Server
	addr string        // the bound address (endpoint may say port 0)
	done chan struct{} // closed when Serve returned
	mu   sync.Mutex
}

func newServer(cfg *Config, set component.TelemetrySettings, m *selftelemetry.Metrics) *server {
	return &server{cfg: cfg, set: set, metrics: m}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, s.metrics.Handler())
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Start listens before returning, so a port in use fails the collector's
// start-up with a clear error instead of a log line nobody reads.
func (s *server) Start(ctx context.Context, host component.Host) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, err := s.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("opsightmetrics: cannot listen on endpoint %q: %w (another process may hold the port: free it or set endpoint to another address)", s.cfg.NetAddr.Endpoint, err)
	}
	var exts map[component.ID]component.Component
	if host != nil {
		exts = host.GetExtensions()
	}
	srv, err := s.cfg.ToServer(ctx, exts, s.set, s.handler())
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("opsightmetrics: cannot build the HTTP server for %q: %w", s.cfg.NetAddr.Endpoint, err)
	}
	s.srv = srv
	s.addr = ln.Addr().String()
	s.done = make(chan struct{})
	s.set.Logger.Info("serving metrics", zap.String("endpoint", ln.Addr().String()), zap.String("path", MetricsPath))
	go func(done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.set.Logger.Error("opsightmetrics: server stopped", zap.Error(err))
		}
	}(s.done)
	return nil
}

// Shutdown stops the server and waits for the serving goroutine; it is safe
// without a prior Start and when called twice.
func (s *server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.srv = nil
	return err
}
