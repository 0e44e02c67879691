package analysis

import (
	"math"
	"testing"

	"github.com/opsight/opsight/triage/internal/data"
)

func sp(id, parent byte, name string, start, end int64) *data.Span {
	s := &data.Span{Name: name, Start: start, End: end}
	s.ID[7] = id
	if parent != 0 {
		s.Parent[7] = parent
	}
	return s
}

func TestCriticalPath(t *testing.T) {
	tests := []struct {
		name  string
		spans []*data.Span // the first is the root
		want  map[string]int64
	}{
		{"leaf", []*data.Span{sp(1, 0, "R", 0, 100)}, map[string]int64{"R": 100}},
		{"sequential children all on the path", []*data.Span{sp(1, 0, "R", 0, 100), sp(2, 1, "GET", 0, 30), sp(3, 1, "PUT", 50, 70)},
			map[string]int64{"R": 50, "GET": 30, "PUT": 20}},
		{"parallel children: only the one that ends last counts", []*data.Span{sp(1, 0, "R", 0, 100), sp(2, 1, "A", 10, 90), sp(3, 1, "B", 20, 60)},
			map[string]int64{"R": 20, "A": 80}},
		{"overlap: the earlier child clipped where the later starts", []*data.Span{sp(1, 0, "R", 0, 100), sp(2, 1, "A", 0, 60), sp(3, 1, "B", 40, 100)},
			map[string]int64{"A": 40, "B": 60}},
		{"grandchild", []*data.Span{sp(1, 0, "R", 0, 100), sp(2, 1, "A", 10, 90), sp(3, 2, "DB", 20, 80)},
			map[string]int64{"R": 20, "A": 20, "DB": 60}},
		{"child outliving its parent is cut at the parent's end", []*data.Span{sp(1, 0, "R", 0, 100), sp(2, 1, "A", 50, 150)},
			map[string]int64{"R": 50, "A": 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kids := map[data.SpanID][]*data.Span{}
			for _, s := range tt.spans[1:] {
				kids[s.Parent] = append(kids[s.Parent], s)
			}
			got := map[string]int64{}
			var sum int64
			CriticalPath(tt.spans[0], kids, func(s *data.Span, self int64) {
				got[s.Name] += self
				sum += self
			})
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: self %d, want %d (all: %v)", k, got[k], v, got)
				}
			}
			for k, v := range got {
				if _, ok := tt.want[k]; !ok && v != 0 {
					t.Errorf("%s got %d, want nothing", k, v)
				}
			}
			if root := tt.spans[0]; sum != root.End-root.Start {
				t.Errorf("self times sum to %d, want the root's %d", sum, root.End-root.Start)
			}
		})
	}
}

func TestErrorShare(t *testing.T) {
	tests := []struct {
		name           string
		xb, nb, xc, nc int
		tested         bool
		moved          bool // p_up below 0.001
	}{
		{"0 of 8 is no baseline", 0, 8, 60, 1600, false, false},
		{"3% to 30% on 900 each", 27, 900, 270, 900, true, true},
		{"same share", 27, 900, 28, 900, true, false},
		{"within the allowed delta", 27, 900, 33, 900, true, false},
		{"no errors", 0, 900, 0, 900, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := errorShare(tt.xb, tt.nb, tt.xc, tt.nc, 0.01)
			if e.Tested != tt.tested {
				t.Fatalf("tested %v (%s), want %v", e.Tested, e.Reason, tt.tested)
			}
			if (e.PUp < 0.001) != tt.moved {
				t.Errorf("p_up %g, want moved=%v", e.PUp, tt.moved)
			}
			if math.IsNaN(e.Baseline) || math.IsNaN(e.Candidate) {
				t.Errorf("shares %v %v", e.Baseline, e.Candidate)
			}
		})
	}
}

func TestLatencyNeedsSamples(t *testing.T) {
	few := make([]float64, 100)
	many := make([]float64, 400)
	for i := range few {
		few[i] = float64(i+1) / 1000
	}
	for i := range many {
		many[i] = 2 * float64(i+1) / 1000
	}
	if e, r := latency(few, many, 0.99, 1.1); e.Tested || r != nil || e.Reason == "" {
		t.Errorf("p99 of 100 spans tested: %+v", e)
	}
	e, r := latency(many, many, 0.5, 1.1)
	if !e.Tested || r == nil || e.Value != 1 || e.PUp < 0.5 || e.PDown < 0.5 {
		t.Errorf("identical sides: %+v", e)
	}
}
