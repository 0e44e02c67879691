package lokiexporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/loki/pkg/push"
	"go.uber.org/zap"
)

// verdict is what Loki's answer says about one entry of the push.
type verdict struct {
	ref *refusal
	// accepted is set when Loki refused only some entries of the stream and
	// it cannot be told which: "<M-N> of <M>". Such entries are not re-sent
	// but dead-lettered (duplicates are better than loss).
	accepted string
}

// refusalMap maps Loki's refusals onto the entries of batch b.
type refusalMap struct {
	marks map[*stream]map[int]verdict
}

func (m *refusalMap) mark(s *stream, i int, v verdict) {
	ms := m.marks[s]
	if ms == nil {
		ms = map[int]verdict{}
		m.marks[s] = ms
	}
	if _, done := ms[i]; !done {
		ms[i] = v
	}
}

func (m *refusalMap) marked(s *stream, i int) bool {
	_, ok := m.marks[s][i]
	return ok
}

// markStream marks every entry of s not marked yet.
func (m *refusalMap) markStream(s *stream, v verdict) {
	for i := range s.entries {
		m.mark(s, i, v)
	}
}

// findStream returns the stream of b Loki named: the same label string, or
// else the one whose labels are all in Loki's (Loki may add labels, e.g.
// service_name); nil when none.
func (b *batch) findStream(labels string) *stream {
	if s, ok := b.byKey[labels]; ok {
		return s
	}
	theirs, ok := parseLabels(labels)
	if !ok {
		return nil
	}
	have := labelMap(theirs)
	var best *stream
	for _, s := range b.streams {
		all := true
		for _, p := range s.pairs {
			if v, ok := have[p.Name]; !ok || v != p.Value {
				all = false
				break
			}
		}
		if all && (best == nil || len(s.pairs) > len(best.pairs)) {
			best = s
		}
	}
	return best
}

// mapRefusals re-applies the rule each refusal names, with the bound Loki
// gives, to find the refused entries.
func mapRefusals(b *batch, refs []refusal, unknown []string) *refusalMap {
	m := &refusalMap{marks: map[*stream]map[int]verdict{}}
	for i := range refs {
		r := &refs[i]
		s := b.findStream(r.labels)
		if s == nil {
			// A stream we did not send, or no stream named: all of this
			// push may be concerned.
			for _, s := range b.streams {
				m.markStream(s, verdict{ref: r, accepted: "unknown"})
			}
			continue
		}
		if r.stream {
			// Label errors refuse the whole stream: one message, all its entries.
			r.count = len(s.entries)
			m.markStream(s, verdict{ref: r})
			continue
		}
		if r.ingester {
			mapIngester(m, s, r)
			continue
		}
		var pred func(push.Entry) bool
		switch r.reason {
		case reasonLineTooLong:
			pred = func(en push.Entry) bool { return len(en.Line) == r.length }
		case reasonTooOld:
			// The bound is printed in whole seconds: an entry in the
			// bound's second may have been refused or not.
			pred = func(en push.Entry) bool {
				ts := en.Timestamp.UnixNano()
				return floorSec(ts) == r.entrySec && ts < r.bound+int64(time.Second)
			}
		case reasonTooNew:
			pred = func(en push.Entry) bool { return floorSec(en.Timestamp.UnixNano()) == r.entrySec }
		case reasonMetadataTooLarge:
			pred = func(en push.Entry) bool { return metadataSize(en.StructuredMetadata) == r.length }
		case reasonMetadataTooMany:
			pred = func(en push.Entry) bool { return len(en.StructuredMetadata) == r.length }
		}
		var cand []int
		for i, en := range s.entries {
			if pred != nil && !m.marked(s, i) && pred(en) {
				cand = append(cand, i)
			}
		}
		for _, i := range cand {
			m.mark(s, i, verdict{ref: r})
		}
		if len(cand) < r.count {
			// Loki refused more than we can find: we cannot tell which.
			m.markStream(s, verdict{ref: r, accepted: "unknown"})
		}
	}
	if len(unknown) > 0 {
		r := &refusal{reason: reasonUnknown, message: joinUnknown(unknown), count: b.entryCount()}
		for _, s := range b.streams {
			m.markStream(s, verdict{ref: r, accepted: "unknown"})
		}
	}
	return m
}

func mapIngester(m *refusalMap, s *stream, r *refusal) {
	accepted := verdict{ref: r, accepted: fmt.Sprintf("%d of %d", max(r.total-r.count, 0), r.total)}
	if r.count >= r.total {
		// None of the stream's entries was accepted (e.g. the per-stream
		// rate limit applied to the whole stream).
		m.markStream(s, verdict{ref: r})
		return
	}
	if len(r.listedTS) == r.count {
		// Every refused entry is listed with its exact timestamp.
		want := map[int64]int{}
		for _, ts := range r.listedTS {
			want[ts]++
		}
		var found []int
		for i, en := range s.entries {
			if ts := en.Timestamp.UnixNano(); want[ts] > 0 && !m.marked(s, i) {
				want[ts]--
				found = append(found, i)
			}
		}
		if len(found) == r.count {
			for _, i := range found {
				m.mark(s, i, verdict{ref: r})
			}
			return
		}
		m.markStream(s, accepted)
		return
	}
	if r.reason == reasonTooFarBehind && r.bound != 0 {
		// More refused than listed: re-apply the rule with Loki's bound.
		var cand []int
		for i, en := range s.entries {
			if en.Timestamp.UnixNano() < r.bound+int64(time.Second) && !m.marked(s, i) {
				cand = append(cand, i)
			}
		}
		if len(cand) == r.count {
			for _, i := range cand {
				m.mark(s, i, verdict{ref: r})
			}
			return
		}
	}
	m.markStream(s, accepted)
}

func joinUnknown(segs []string) string { return strings.Join(segs, "; ") }

func floorSec(ns int64) int64 {
	return ns - ((ns%int64(time.Second))+int64(time.Second))%int64(time.Second)
}

func metadataSize(md push.LabelsAdapter) int {
	n := 0
	for _, p := range md {
		n += len(p.Name) + len(p.Value)
	}
	return n
}

// handleRefusal accounts Loki's refusal of (part of) b: counts it, fixes
// what can be fixed into the next round's batch, and returns the rest as
// dead letters. wait is how long to wait before the next round.
func (e *lokiExporter) handleRefusal(b *batch, resp *refusedResponse, round int) (next *batch, dead []deadRecord, wait time.Duration) {
	var refs []refusal
	var unknown []string
	if resp.status == 400 || resp.status == 429 {
		refs, unknown = parseRefusals(resp.body)
	} else if resp.body != "" || resp.status != 0 {
		unknown = []string{fmt.Sprintf("HTTP %d: %s", resp.status, resp.body)}
	}
	if len(refs) == 0 && len(unknown) == 0 {
		unknown = []string{fmt.Sprintf("HTTP %d with an empty body", resp.status)}
	}
	m := mapRefusals(b, refs, unknown)
	// Refused counts are Loki's own numbers (a stream-wide refusal counts
	// the stream's entries, as loki_discarded_samples_total does).
	for i := range refs {
		e.metrics.ExportRefused.WithLabelValues(e.id, refs[i].reason).Add(float64(refs[i].count))
		e.adviseLimits(&refs[i])
	}
	if len(unknown) > 0 {
		e.metrics.ExportRefused.WithLabelValues(e.id, reasonUnknown).Add(float64(b.entryCount()))
		e.logger.Error("Loki refused a push with an answer that does not name the refused entries; all its entries are dead-lettered (some may have been accepted: duplicates on replay)",
			zap.Int("status", resp.status), zap.String("loki_message", truncateRunes(joinUnknown(unknown), maxReasonBytes)), zap.Int("entries", b.entryCount()))
	}

	now := e.enc.now()
	bd := e.enc.bounds(now)
	next = &batch{byKey: map[string]*stream{}}
	var adj adjustments
	for _, s := range b.streams {
		marks := m.marks[s]
		if len(marks) == 0 {
			continue
		}
		var ns *stream
		// Fixed entries keep their order without sharing a timestamp:
		// restamped ones restampStep apart from now (room for the pieces if
		// one is split later), and the pieces of consecutive split entries
		// (the pieces of one line, split again) follow one another (last).
		var last, restamps int64
		for i, en := range s.entries {
			v, ok := marks[i]
			if !ok {
				continue
			}
			fixed, why := e.fix(en, v, round, bd, &adj)
			if fixed == nil {
				dead = append(dead, deadRecordOf(e.id, s, en, v.ref.reason, resp.status, why+v.ref.message, v.accepted))
				continue
			}
			if ns == nil {
				ns = &stream{key: s.key, pairs: s.pairs, newest: e.newest.get(s.key)}
				next.byKey[s.key] = ns
				next.streams = append(next.streams, ns)
			}
			split := v.ref.reason == reasonLineTooLong
			if !split {
				last = 0
			}
			for _, f := range fixed {
				switch {
				case isRestamp(v.ref.reason):
					f.Timestamp = f.Timestamp.Add(time.Duration(restamps * restampStep))
					restamps++
				case split:
					if ts := f.Timestamp.UnixNano(); ts <= last {
						f.Timestamp = time.Unix(0, last+1)
					}
					last = f.Timestamp.UnixNano()
				}
				ns.add(f)
			}
			if v.ref.reason == reasonStreamRateLimit {
				wait = rateLimitWait(resp.retryAfter, round)
			}
		}
	}
	e.countAdjustments(adj)
	if len(next.streams) > 0 {
		e.logger.Info("Loki refused some log entries; re-sending them fixed",
			zap.Int("round", round), zap.Int("entries", next.entryCount()), zap.Int("status", resp.status))
	}
	return next, dead, wait
}

// fix returns the entry made acceptable for the rule Loki named (nil when
// it cannot be, with why, prefixed to Loki's message in the dead letter).
func (e *lokiExporter) fix(en push.Entry, v verdict, round int, bd bounds, adj *adjustments) ([]push.Entry, string) {
	if v.accepted != "" {
		return nil, "Loki did not say which entries it refused; kept as sent: "
	}
	if round >= maxRounds {
		return nil, "still refused after " + strconv.Itoa(maxRounds) + " pushes: "
	}
	r := v.ref
	switch r.reason {
	case reasonTooOld, reasonTooNew, reasonTooFarBehind, reasonOutOfOrder: // isRestamp
		// Now is inside Loki's window (the stream's newest is at most
		// now + creation_grace_period); handleRefusal spaces restamped
		// entries restampStep apart to keep their order.
		en.Timestamp = time.Unix(0, bd.now)
		adj.restamped++
		return []push.Entry{en}, ""
	case reasonLineTooLong:
		if r.limit < minLineSize || len(en.Line) <= r.limit {
			return nil, "cannot split under Loki's limit: "
		}
		pieces := splitLine(en.Line, r.limit)
		out := make([]push.Entry, len(pieces))
		for i, p := range pieces {
			out[i] = push.Entry{Timestamp: en.Timestamp.Add(time.Duration(i)), Line: p, StructuredMetadata: en.StructuredMetadata}
		}
		adj.split++
		return out, ""
	case reasonMetadataTooLarge, reasonMetadataTooMany:
		lim := e.enc.lim
		if r.reason == reasonMetadataTooLarge {
			lim.MaxStructuredMetadataSize = ByteSize(r.limit)
		} else {
			lim.MaxStructuredMetadataEntriesCount = r.limit
		}
		if r.limit < 1 {
			return nil, "cannot fit Loki's limit: "
		}
		md, _ := (&encoder{lim: lim}).limitMetadata(en.StructuredMetadata)
		en.StructuredMetadata = md
		adj.metadataTruncated++
		return []push.Entry{en}, ""
	case reasonStreamRateLimit:
		return []push.Entry{en}, ""
	}
	return nil, ""
}

// adviseLimits warns, once per reason, when Loki's answer shows its limits
// are stricter than the exporter's: entries are then refused and fixed
// after the fact instead of before sending.
func (e *lokiExporter) adviseLimits(r *refusal) {
	var key, advice string
	switch r.reason {
	case reasonLineTooLong:
		if r.limit > 0 && r.limit < int(e.cfg.Limits.MaxLineSize) {
			key, advice = "limits.max_line_size", fmt.Sprintf("Loki's max_line_size is %d bytes, below limits.max_line_size (%d); set limits.max_line_size: %d", r.limit, e.cfg.Limits.MaxLineSize, r.limit)
		}
	case reasonTooOld:
		if r.bound != 0 {
			key, advice = "limits.reject_old_samples_max_age", fmt.Sprintf("Loki refuses entries older than %s, stricter than limits.reject_old_samples_max_age (%v); set it to Loki's reject_old_samples_max_age", time.Unix(0, r.bound).UTC().Format(time.RFC3339), e.cfg.Limits.RejectOldSamplesMaxAge)
		}
	case reasonTooNew:
		key, advice = "limits.creation_grace_period", "Loki refused timestamps in the future that limits.creation_grace_period allows; set it to Loki's creation_grace_period (or check this node's clock)"
	case reasonLabelValueTooLong, reasonLabelNameTooLong, reasonMaxLabelNames:
		key, advice = "limits."+r.reason, "Loki's label limits are stricter than the exporter's limits block; set max_label_value_length, max_label_name_length and max_label_names_per_series to Loki's limits_config values"
	case reasonMetadataTooLarge, reasonMetadataTooMany:
		key, advice = "limits."+r.reason, fmt.Sprintf("Loki's structured metadata limit is %d, stricter than the limits block; set max_structured_metadata_size / max_structured_metadata_entries_count to Loki's values", r.limit)
	case reasonTooFarBehind:
		key, advice = "limits.out_of_order_window", "Loki refused entries as too far behind their stream's newest; if this repeats, set limits.out_of_order_window to half of Loki's ingester.max_chunk_age, or check for another writer of the same streams"
	}
	if key == "" {
		return
	}
	if _, done := e.advised.LoadOrStore(key, true); !done {
		e.logger.Warn("Loki's limits differ from the exporter's: "+advice, zap.String("loki_message", truncateRunes(r.message, maxReasonBytes)))
	}
}

func isRestamp(reason string) bool {
	switch reason {
	case reasonTooOld, reasonTooNew, reasonTooFarBehind, reasonOutOfOrder:
		return true
	}
	return false
}

func rateLimitWait(retryAfter string, round int) time.Duration {
	if secs, err := strconv.Atoi(retryAfter); err == nil && secs >= 0 {
		return min(time.Duration(secs)*time.Second, maxRateLimitWait)
	}
	return min(time.Second<<(round-1), maxRateLimitWait)
}

// newestMap remembers, per stream, the newest timestamp sent, so an entry
// more than the out-of-order window behind it is restamped before Loki
// refuses it. Bounded: when full, half is forgotten (the 400 path still
// catches what Loki then refuses).
type newestMap struct {
	mu  sync.Mutex
	m   map[string]int64
	max int
}

func newNewestMap(max int) *newestMap { return &newestMap{m: map[string]int64{}, max: max} }

func (n *newestMap) get(key string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[key]
}

// save writes the map to path (temp file, fsync, rename), so the next
// process knows what Loki holds (persistent queue across a restart).
func (n *newestMap) save(path string) error {
	n.mu.Lock()
	b, err := json.Marshal(n.m)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// load reads what save wrote; a missing file is no error.
func (n *newestMap) load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	m := map[string]int64{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, v := range m {
		if len(n.m) >= n.max {
			break
		}
		if v > n.m[k] {
			n.m[k] = v
		}
	}
	return nil
}

func (n *newestMap) update(b *batch) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range b.streams {
		if s.newest <= n.m[s.key] {
			continue
		}
		if _, ok := n.m[s.key]; !ok && len(n.m) >= n.max {
			i := 0
			for k := range n.m {
				if i%2 == 0 {
					delete(n.m, k)
				}
				i++
			}
		}
		n.m[s.key] = s.newest
	}
}
