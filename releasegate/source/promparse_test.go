package source

import (
	"math"
	"strings"
	"testing"
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
	h, total := classicToBuckets(map[float64]float64{0.1: 5, 0.25: 4.99, 0.5: 9, math.Inf(1): 10})
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
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParsePromResponse(body)
		if err != nil {
			return
		}
		for _, s := range r.Data.Result {
			_, _ = s.Float()
			if h, _, err := s.NativeHistogram(); err == nil {
				_ = h.Quantile(0.99)
			}
		}
	})
}
