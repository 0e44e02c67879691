package online

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/opsight/opsight/triage/internal/data"
)

// tempoSearch is Tempo's /api/search answer: trace ids (hex, leading zeros
// stripped, recorded in testdata/tempo_search_service.json) and a few facts.
type tempoSearch struct {
	Traces []struct {
		TraceID           string `json:"traceID"`
		RootServiceName   string `json:"rootServiceName"`
		RootTraceName     string `json:"rootTraceName"`
		StartTimeUnixNano string `json:"startTimeUnixNano"`
		DurationMs        *int64 `json:"durationMs"`
	} `json:"traces"`
}

// Search runs a TraceQL search over [from, to] (whole seconds, as Tempo
// reads start and end) and returns at most limit trace ids. A search that
// hits the limit says nothing about it (fixtures/tempo README): len ==
// limit means "maybe more".
func (c Client) Search(ctx context.Context, traceql string, from, to time.Time, limit int) ([]data.TraceID, error) {
	q := url.Values{}
	q.Set("q", traceql)
	q.Set("start", strconv.FormatInt(from.Unix(), 10))
	q.Set("end", strconv.FormatInt(to.Add(999*time.Millisecond).Unix(), 10))
	q.Set("limit", strconv.Itoa(limit))
	var a tempoSearch
	if err := c.get(ctx, "/api/search", q, nil, &a); err != nil {
		return nil, err
	}
	ids, err := tempoSearchIDs(a)
	if err == nil {
		c.note("/api/search", traceql, fmt.Sprintf("%d traces (limit %d)", len(ids), limit))
	}
	return ids, err
}

// ParseTempoSearch decodes a search answer into trace ids.
func ParseTempoSearch(b []byte) ([]data.TraceID, error) { return decode(b, tempoSearchIDs) }

// tempoSearchIDs converts a decoded answer, in its order, without repeats.
func tempoSearchIDs(a tempoSearch) ([]data.TraceID, error) {
	var out []data.TraceID
	seen := map[data.TraceID]bool{}
	for _, t := range a.Traces {
		var id data.TraceID
		if err := decodeID(id[:], t.TraceID); err != nil {
			return nil, fmt.Errorf("tempo search: traceID %q: %v", t.TraceID, err)
		}
		if id.IsZero() || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}
