package simoperator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// collect runs an operator briefly and returns the spans it sent and the
// lines it wrote.
func collect(t *testing.T, cfg Config) ([]ptrace.Span, string) {
	t.Helper()
	var mu sync.Mutex
	var spans []ptrace.Span
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		rss := req.Traces().ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			ss := rss.At(i).ScopeSpans()
			for j := 0; j < ss.Len(); j++ {
				for k := 0; k < ss.At(j).Spans().Len(); k++ {
					spans = append(spans, ss.At(j).Spans().At(k))
				}
			}
		}
	}))
	defer srv.Close()
	cfg.LogRoot, cfg.Namespace, cfg.Pod, cfg.OTLPEndpoint = t.TempDir(), "ns", "pod", srv.URL
	cfg.ReconcilesPerSecond, cfg.Workers = 100, 8
	op, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	st, err := op.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(st.LogDir, "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return spans, string(b)
}

// TestSlowCall: the knob lengthens the named call's client span by the
// delay, shifts the calls after it and lengthens the reconcile; without it
// a GET is half a step of the reconcile.
func TestSlowCall(t *testing.T) {
	for _, delay := range []time.Duration{0, 30 * time.Millisecond} {
		spans, _ := collect(t, Config{SlowCallMethod: "GET", SlowCallDelay: delay, Seed: 3})
		byID := map[[8]byte]ptrace.Span{}
		for _, s := range spans {
			byID[s.SpanID()] = s
		}
		n := 0
		for _, s := range spans {
			if s.Name() != "GET" {
				continue
			}
			n++
			root := byID[s.ParentSpanID()]
			get := s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime())
			rd := root.EndTimestamp().AsTime().Sub(root.StartTimestamp().AsTime())
			if delay > 0 && get < delay {
				t.Errorf("slow GET took %v, want at least %v", get, delay)
			}
			if delay == 0 && get > rd/2 {
				t.Errorf("GET %v of a %v reconcile: default shape changed", get, rd)
			}
			if s.EndTimestamp() > root.EndTimestamp() {
				t.Errorf("GET ends after its reconcile")
			}
		}
		for _, s := range spans {
			if s.Name() == "PUT" {
				for _, g := range spans {
					if g.Name() == "GET" && g.ParentSpanID() == s.ParentSpanID() && s.StartTimestamp() < g.EndTimestamp() {
						t.Errorf("PUT starts before the GET it follows ends (delay %v)", delay)
					}
				}
			}
		}
		if n == 0 {
			t.Fatalf("delay %v: no GET spans", delay)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	_, logs := collect(t, Config{ErrorShare: 1, ErrorMessages: []string{"etcdserver: request timed out"}, Seed: 5})
	if !strings.Contains(logs, "etcdserver: request timed out") {
		t.Fatal("the configured error message was not logged")
	}
	for _, m := range errorMessages {
		if m != "etcdserver: request timed out" && strings.Contains(logs, m[:20]) {
			t.Errorf("a default message %q was logged though ErrorMessages replaces them", m)
		}
	}
}

// TestCPUThrottle: the knob stretches the whole pod, the reconcile's own
// time and each API call alike (their medians by about the factor), while
// the shape of a reconcile (a GET is half a step of it) stays.
func TestCPUThrottle(t *testing.T) {
	medians := func(factor float64) (rec, get float64) {
		spans, _ := collect(t, Config{CPUThrottleFactor: factor, Seed: 9})
		var r, g []float64
		for _, s := range spans {
			d := s.EndTimestamp().AsTime().Sub(s.StartTimestamp().AsTime()).Seconds()
			switch s.Name() {
			case "Reconcile":
				r = append(r, d)
			case "GET":
				g = append(g, d)
			}
		}
		if len(r) < 20 || len(g) < 20 {
			t.Fatalf("factor %v: %d reconciles, %d GETs", factor, len(r), len(g))
		}
		slices.Sort(r)
		slices.Sort(g)
		return r[len(r)/2], g[len(g)/2]
	}
	r1, g1 := medians(0)
	r3, g3 := medians(3)
	if r3 < 2*r1 || r3 > 4.5*r1 {
		t.Errorf("reconcile median %v throttled ×3 vs %v: want about 3×", r3, r1)
	}
	if g3 < 2*g1 || g3 > 4.5*g1 {
		t.Errorf("GET median %v throttled ×3 vs %v: want about 3× (every span slower, not one)", g3, g1)
	}
}
