package source

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/opsight/opsight/releasegate/stats"
)

// A native histogram as Prometheus's HTTP API returns it (boundary rule,
// lower, upper, count as strings).
const promNative = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"service_name":"svc","span_name":"Reconcile"},"histogram":[1795630792.5,{"count":"10","sum":"0.6","buckets":[[0,"0.04362","0.04757","4"],[0,"0.04757","0.05187","5"],[0,"0.05187","0.05657","1"]]}]}]}}`

func TestParsePromNative(t *testing.T) {
	r, err := ParsePromResponse([]byte(promNative))
	if err != nil {
		t.Fatal(err)
	}
	h, count, err := r.Data.Result[0].NativeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	if count != 10 || len(h.Buckets) != 3 || !h.Exponential {
		t.Fatalf("count %v buckets %+v", count, h.Buckets)
	}
	// p50 = rank 5: one fifth into the second bucket, geometrically.
	want := 0.04757 * math.Pow(0.05187/0.04757, 0.2)
	if got := h.Quantile(0.5); math.Abs(got-want) > 1e-12 {
		t.Errorf("p50 %v, want %v", got, want)
	}
}

func TestParsePromErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"status":"error","errorType":"bad_data","error":"parse error"}`: "bad_data: parse error",
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`: `expected a vector`,
		`<html>`: "not Prometheus API JSON",
	} {
		if _, err := ParsePromResponse([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestClassicToBuckets(t *testing.T) {
	// increase() extrapolates each series alone: a cumulative count may dip.
	h, total := stats.FromCumulative(map[float64]float64{0.1: 5, 0.25: 4.99, 0.5: 9, math.Inf(1): 10})
	if total != 10 || h.Buckets[0].Upper != 0.1 || h.Buckets[len(h.Buckets)-1].Lower != 0.5 {
		t.Errorf("total %v buckets %+v", total, h.Buckets)
	}
	for _, b := range h.Buckets {
		if b.Count < 0 {
			t.Errorf("negative bucket %+v", b)
		}
	}
}

func TestPromSelector(t *testing.T) {
	q := Query{Service: "svc", SpanNames: []string{"GET /a.b", "Reconcile"}, SpanKind: "SPAN_KIND_SERVER"}
	got := promSelector(q, "v1", `cluster="prod"`)
	want := `{revision="v1",cluster="prod",service_name="svc",span_name=~"GET /a\\.b|Reconcile",span_kind="SPAN_KIND_SERVER"}`
	if got != want {
		t.Errorf("selector\n got %s\nwant %s", got, want)
	}
}

func FuzzParsePromResponse(f *testing.F) {
	f.Add([]byte(promNative))
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"le":"0.1"},"value":[1,"3"]}]}}`))
	// Unsorted buckets, a negative and a NaN count: dropped or sorted by NativeHistogram.
	f.Add([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"3","sum":"1","buckets":[[0,"2","4","1"],[0,"0.5","1","-2"],[0,"1","2","2"],[0,"1","2","NaN"]]}]}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParsePromResponse(body)
		if err != nil {
			return
		}
		if r.Status != "success" || r.Data.ResultType != "vector" {
			t.Fatalf("accepted status %q, result type %q", r.Status, r.Data.ResultType)
		}
		// Round trip: what was decoded, encoded again, decodes to the same
		// samples (the same floats, the same histograms, or the same errors).
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		again, err := ParsePromResponse(b)
		if err != nil {
			t.Fatalf("re-encoded response rejected: %v\n%s", err, b)
		}
		if len(again.Data.Result) != len(r.Data.Result) {
			t.Fatalf("%d samples, %d after the round trip", len(r.Data.Result), len(again.Data.Result))
		}
		for i, s := range r.Data.Result {
			s2 := again.Data.Result[i]
			if !maps.Equal(s.Metric, s2.Metric) {
				t.Errorf("sample %d: labels %v, %v after the round trip", i, s.Metric, s2.Metric)
			}
			v1, err1 := s.Float()
			v2, err2 := s2.Float()
			if show(v1, err1) != show(v2, err2) {
				t.Errorf("sample %d: Float %s, %s after the round trip", i, show(v1, err1), show(v2, err2))
			}
			h1, c1, err1 := s.NativeHistogram()
			h2, c2, err2 := s2.NativeHistogram()
			if show(h1, c1, err1) != show(h2, c2, err2) {
				t.Errorf("sample %d: histogram %s, %s after the round trip", i, show(h1, c1, err1), show(h2, c2, err2))
			}
			if err1 == nil {
				checkNative(t, h1, s.Histogram[1])
			}
		}
	})
}

func show(v ...any) string { return fmt.Sprint(v...) }

// checkNative asserts what the gate relies on in a decoded native histogram:
// buckets sorted by upper bound, every count positive (empty, negative and
// NaN buckets dropped), no more buckets than the body listed, and a p99 that
// lies within the buckets.
func checkNative(t *testing.T, h *stats.Histogram, body json.RawMessage) {
	t.Helper()
	var raw struct{ Buckets []json.RawMessage }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("histogram decoded, but its body does not: %v", err)
	}
	if len(h.Buckets) > len(raw.Buckets) {
		t.Errorf("%d buckets from %d in the body", len(h.Buckets), len(raw.Buckets))
	}
	finite := true
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, b := range h.Buckets {
		if !(b.Count > 0) {
			t.Errorf("bucket %d count %v", i, b.Count)
		}
		if i > 0 && b.Upper < h.Buckets[i-1].Upper {
			t.Errorf("buckets not sorted by upper bound: %+v", h.Buckets)
		}
		finite = finite && !math.IsInf(b.Count, 0) && !math.IsNaN(b.Lower) && !math.IsInf(b.Lower, 0) &&
			!math.IsNaN(b.Upper) && !math.IsInf(b.Upper, 0) && b.Lower <= b.Upper
		lo, hi = math.Min(lo, math.Max(b.Lower, 0)), math.Max(hi, b.Upper)
	}
	if total := h.Total(); finite && total > 0 && !math.IsInf(total, 0) {
		if q := h.Quantile(0.99); !(q >= lo*(1-1e-9) && q <= hi*(1+1e-9)) {
			t.Errorf("p99 %v outside the buckets [%v, %v]: %+v", q, lo, hi, h.Buckets)
		}
	}
}
