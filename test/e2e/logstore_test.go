package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/testservers"
)

// logStore is where the sidecar's lines land in a test: a real VictoriaLogs
// (queryable, and lenient: it takes what Loki refuses) or the strict Loki
// stand-in (Loki's documented ingestion rules, docs/loki-stand-in.md).
type logStore interface {
	baseURL() string  // what a fault proxy forwards to
	pushPath() string // the Loki push path on that server
	seqs(pod string) (map[int]int, error)
	count(pod string) (int, error)
	// discarded is what the store refused as invalid, by Loki's reason.
	// Rate limits (a 429 for the whole push or stream) are left out: they
	// are pushback the sidecar retries, not entries refused.
	discarded() map[string]int
	settle() time.Duration // how long new entries take to become visible
}

const (
	storeVictoriaLogs = "victorialogs"
	storeStrictLoki   = "strictloki"
)

// eachLogStore runs f against both stores, in parallel subtests.
func eachLogStore(t *testing.T, f func(t *testing.T, store string)) {
	t.Parallel()
	for _, s := range []string{storeVictoriaLogs, storeStrictLoki} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			f(t, s)
		})
	}
}

func startLogStore(t *testing.T, name string) logStore {
	switch name {
	case storeVictoriaLogs:
		return vlStore{testservers.StartVictoriaLogs(t)}
	case storeStrictLoki:
		return lokiStore{testservers.StartStrictLoki(t)}
	}
	t.Fatalf("unknown log store %q", name)
	return nil
}

type vlStore struct {
	*testservers.VictoriaLogsServer
}

func (s vlStore) baseURL() string                      { return s.URL }
func (s vlStore) pushPath() string                     { return "/insert/loki/api/v1/push" }
func (s vlStore) seqs(pod string) (map[int]int, error) { return seqsInVL(s.VictoriaLogsServer, pod) }
func (s vlStore) count(pod string) (int, error)        { return s.Count(fmt.Sprintf("pod:=%q", pod)) }
func (s vlStore) discarded() map[string]int            { return nil }

// VictoriaLogs makes new entries searchable within about a second.
func (s vlStore) settle() time.Duration { return 1500 * time.Millisecond }

type lokiStore struct{ *testservers.StrictLoki }

func (s lokiStore) baseURL() string  { return s.URL }
func (s lokiStore) pushPath() string { return "/loki/api/v1/push" }
func (s lokiStore) discarded() map[string]int {
	d := s.Discarded()
	delete(d, "rate_limited")
	delete(d, "per_stream_rate_limit")
	return d
}
func (s lokiStore) settle() time.Duration { return 0 }

func (s lokiStore) seqs(pod string) (map[int]int, error) {
	seen := map[int]int{}
	for _, e := range s.Entries() {
		if e.Labels["pod"] != pod {
			continue
		}
		var m struct {
			Seq *int `json:"seq"`
		}
		if json.Unmarshal([]byte(e.Line), &m) == nil && m.Seq != nil {
			seen[*m.Seq]++
		}
	}
	return seen, nil
}

func (s lokiStore) count(pod string) (int, error) {
	n := 0
	for _, e := range s.Entries() {
		if e.Labels["pod"] == pod {
			n++
		}
	}
	return n, nil
}
