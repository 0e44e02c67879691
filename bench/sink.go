package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// sink is the one backend both collectors export to: it accepts Loki's
// protobuf push (opsight's loki exporter) and OTLP/HTTP protobuf logs and
// traces (the contrib build's otlphttp exporter), decodes every request and
// counts the log records. Decoding is done, not skipped, so a malformed
// export would show as a count that never completes.
type sink struct {
	srv     *http.Server
	addr    string
	records atomic.Int64
	spans   atomic.Int64
	bad     atomic.Int64 // requests that did not decode

	mu          sync.Mutex
	first, last time.Time
	target      int64
	done        chan struct{}
	doneOnce    sync.Once
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{addr: ln.Addr().String()}
	s.reset(0)
	mux := http.NewServeMux()
	mux.HandleFunc("/loki/api/v1/push", s.loki)
	mux.HandleFunc("/v1/logs", s.otlpLogs)
	mux.HandleFunc("/v1/traces", s.otlpTraces)
	s.srv = &http.Server{Handler: mux}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *sink) URL() string { return "http://" + s.addr }

// reset zeroes the counters; done closes once target records arrived.
func (s *sink) reset(target int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records.Store(0)
	s.spans.Store(0)
	s.bad.Store(0)
	s.first, s.last = time.Time{}, time.Time{}
	s.target = target
	s.done = make(chan struct{})
	s.doneOnce = sync.Once{}
}

// window is the time from the first to the last record received.
func (s *sink) window() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last
}

func (s *sink) add(n int64) {
	if n == 0 {
		return
	}
	now := time.Now()
	total := s.records.Add(n)
	s.mu.Lock()
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	target, done, once := s.target, s.done, &s.doneOnce
	s.mu.Unlock()
	if target > 0 && total >= target {
		once.Do(func() { close(done) })
	}
}

func (s *sink) doneCh() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

func body(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	switch r.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	case "snappy":
		if b, err := snappy.Decode(nil, raw); err == nil {
			return b, nil
		}
		return io.ReadAll(snappy.NewReader(bytes.NewReader(raw)))
	case "x-snappy-framed":
		return io.ReadAll(snappy.NewReader(bytes.NewReader(raw)))
	}
	return raw, nil
}

func (s *sink) loki(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err == nil {
		// Loki's protobuf push is always snappy block-compressed.
		raw, err = snappy.Decode(nil, raw)
	}
	var req push.PushRequest
	if err == nil {
		err = req.Unmarshal(raw)
	}
	if err != nil {
		s.bad.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var n int64
	for _, st := range req.Streams {
		n += int64(len(st.Entries))
	}
	s.add(n)
	w.WriteHeader(http.StatusNoContent)
}

func (s *sink) otlpLogs(w http.ResponseWriter, r *http.Request) {
	b, err := body(r)
	req := plogotlp.NewExportRequest()
	if err == nil {
		err = req.UnmarshalProto(b)
	}
	if err != nil {
		s.bad.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.add(int64(req.Logs().LogRecordCount()))
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := plogotlp.NewExportResponse().MarshalProto()
	_, _ = w.Write(out)
}

func (s *sink) otlpTraces(w http.ResponseWriter, r *http.Request) {
	b, err := body(r)
	req := ptraceotlp.NewExportRequest()
	if err == nil {
		err = req.UnmarshalProto(b)
	}
	if err != nil {
		s.bad.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.spans.Add(int64(req.Traces().SpanCount()))
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := ptraceotlp.NewExportResponse().MarshalProto()
	_, _ = w.Write(out)
}
