package lokiexporter

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// Loki's reason names (the `reason` label of loki_discarded_samples_total),
// used as our refused / dead-letter reasons. From pkg/validation/validate.go
// and docs/sources/operations/troubleshooting/troubleshoot-ingest.md.
const (
	reasonLineTooLong          = "line_too_long"
	reasonTooOld               = "greater_than_max_sample_age"
	reasonTooNew               = "too_far_in_future"
	reasonTooFarBehind         = "too_far_behind"
	reasonOutOfOrder           = "out_of_order"
	reasonStreamRateLimit      = "per_stream_rate_limit"
	reasonInvalidLabels        = "invalid_labels"
	reasonMissingLabels        = "missing_labels"
	reasonMaxLabelNames        = "max_label_names_per_series"
	reasonLabelNameTooLong     = "label_name_too_long"
	reasonLabelValueTooLong    = "label_value_too_long"
	reasonDuplicateLabelNames  = "duplicate_label_names"
	reasonMetadataDisallowed   = "disallowed_structured_metadata"
	reasonMetadataTooLarge     = "structured_metadata_too_large"
	reasonMetadataTooMany      = "structured_metadata_too_many"
	reasonMissingEnforcedLabel = "missing_enforced_labels"
	reasonStreamLimit          = "stream_limit"
	reasonUnknown              = "unknown" // a 4xx body we cannot read as Loki's
)

// refusal is one of Loki's messages about refused entries, with what is
// needed to find them again in the batch.
type refusal struct {
	reason  string
	labels  string // the stream as Loki printed it; "" when not named
	message string
	count   int // entries Loki says this message stands for (>= 1)

	// Rule parameters, by reason (zero when not given).
	entrySec  int64 // the entry's timestamp, whole seconds (distributor messages)
	bound     int64 // oldest acceptable timestamp, whole seconds (ns)
	length    int   // line length or metadata size/count Loki measured
	limit     int   // the server's limit
	stream    bool  // the whole stream was refused (label errors)
	ingester  bool  // the ingester's per-stream form
	total     int   // ingester form: entries of the stream Loki received
	listedTS  []int64
	listedWhy []string
}

// Distributor messages (pkg/validation/validate.go). Loki's docs print them
// without quotes and in lower case; the source quotes the values and
// capitalises some; both are accepted.
var (
	reLineTooLong = regexp.MustCompile(`(?is)^max entry size '?(\d+)'? bytes exceeded for stream '?(\{.*\})'? while adding an entry with length '?(\d+)'? bytes$`)
	reTooOld      = regexp.MustCompile(`(?is)^entry for stream '?(\{.*\})'? has timestamp too old: (\S+), oldest acceptable timestamp is: (\S+)$`)
	reTooNew      = regexp.MustCompile(`(?is)^entry for stream '?(\{.*\})'? has timestamp too new: (\S+)$`)
	reLabelNames  = regexp.MustCompile(`(?is)^entry for stream '?(\{.*\})'? has (\d+) label names; limit (\d+)$`)
	reNameLong    = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? has label name too long: `)
	reValueLong   = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? has label value too long: `)
	reDupName     = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? has duplicate label name: `)
	reMDOff       = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? includes structured metadata, but this feature is disallowed`)
	reMDLarge     = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? has structured metadata too large: '?(\d+)'? bytes, limit: '?(\d+)'? bytes`)
	reMDMany      = regexp.MustCompile(`(?is)^stream '?(\{.*\})'? has too many structured metadata labels: '?(\d+)'?, limit: '?(\d+)'?`)
	reBadLabels   = regexp.MustCompile(`(?is)^error parsing labels '?(\{.*\})'? with error: `)
	reNoLabels    = regexp.MustCompile(`(?is)^error at least one label pair is required per stream`)
	reEnforced    = regexp.MustCompile(`(?is)^missing required labels .* for user .* for stream (\{.*?\})`)
	reStreamLimit = regexp.MustCompile(`(?is)^maximum active stream limit exceeded when trying to create stream (\{.*?\}), `)

	// The distributor joins its messages with "; " and prefixes a repeated
	// one with "<n> errors like: " (util.GroupedErrors).
	reGrouped = regexp.MustCompile(`^(\d+) errors like: `)
	reSegment = regexp.MustCompile(`(?i)^(\d+ errors like: )?(max entry size|entry for stream|stream '|stream \{|error parsing labels|error at least one label|missing required labels|maximum active stream limit|per stream rate limit|entry with timestamp)`)

	// The ingester's per-stream form (pkg/ingester/stream.go): up to
	// max_returned_stream_errors (10) lines
	//   entry with timestamp <time.Time.String()> ignored, reason: '<error>',
	// then
	//   user '<tenant>', total ignored: <N> out of <M> for stream: <labels>
	reIngesterLine  = regexp.MustCompile(`(?m)^entry with timestamp (.+?) ignored, reason: '(.*)',\s*$`)
	reIngesterTotal = regexp.MustCompile(`(?s)total ignored: (\d+) out of (\d+) for stream: (\{.*\})\s*$`)
	reBehindBound   = regexp.MustCompile(`oldest acceptable timestamp is: (\S+)`)
)

// goTimeLayout is time.Time.String()'s layout (nanoseconds, zone), the form
// the ingester prints entry timestamps in.
const goTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// maxRefusalBody bounds how much of a 4xx body is read and parsed.
const maxRefusalBody = 1 << 20

// parseRefusals reads a Loki 400/429 body. It returns the refusals it
// recognises and the segments it does not (never both empty for a non-empty
// body).
func parseRefusals(body string) (refs []refusal, unknown []string) {
	body = strings.TrimSpace(body)
	if body == "" {
		return nil, nil
	}
	if m := reIngesterTotal.FindStringSubmatch(body); m != nil {
		if r, ok := parseIngester(body, m); ok {
			return []refusal{r}, nil
		}
	}
	for _, seg := range splitSegments(body) {
		if r, ok := parseSegment(seg); ok {
			refs = append(refs, r)
		} else {
			unknown = append(unknown, seg)
		}
	}
	return refs, unknown
}

// splitSegments cuts the body at "; " where a known message starts, so a
// "; " inside a message (or a label value) does not cut it.
func splitSegments(body string) []string {
	var segs []string
	start := 0
	for i := 0; i+2 < len(body); {
		j := strings.Index(body[i:], "; ")
		if j < 0 {
			break
		}
		at := i + j
		if reSegment.MatchString(body[at+2:]) {
			segs = append(segs, body[start:at])
			start = at + 2
		}
		i = at + 2
	}
	return append(segs, body[start:])
}

func parseSegment(seg string) (refusal, bool) {
	r := refusal{message: seg, count: 1}
	if m := reGrouped.FindStringSubmatch(seg); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return r, false
		}
		r.count = n
		seg = seg[len(m[0]):]
	}
	switch {
	case match(reLineTooLong, seg, func(m []string) bool {
		r.reason, r.labels = reasonLineTooLong, m[2]
		return atoi(m[1], &r.limit) && atoi(m[3], &r.length)
	}):
	case match(reTooOld, seg, func(m []string) bool {
		r.reason, r.labels = reasonTooOld, m[1]
		return parseSec(m[2], &r.entrySec) && parseSec(m[3], &r.bound)
	}):
	case match(reTooNew, seg, func(m []string) bool {
		r.reason, r.labels = reasonTooNew, m[1]
		return parseSec(m[2], &r.entrySec)
	}):
	case match(reLabelNames, seg, func(m []string) bool {
		r.reason, r.labels, r.stream = reasonMaxLabelNames, m[1], true
		return atoi(m[2], &r.length) && atoi(m[3], &r.limit)
	}):
	case match(reMDLarge, seg, func(m []string) bool {
		r.reason, r.labels = reasonMetadataTooLarge, m[1]
		return atoi(m[2], &r.length) && atoi(m[3], &r.limit)
	}):
	case match(reMDMany, seg, func(m []string) bool {
		r.reason, r.labels = reasonMetadataTooMany, m[1]
		return atoi(m[2], &r.length) && atoi(m[3], &r.limit)
	}):
	default:
		for _, st := range []struct {
			re     *regexp.Regexp
			reason string
		}{
			{reNameLong, reasonLabelNameTooLong}, {reValueLong, reasonLabelValueTooLong},
			{reDupName, reasonDuplicateLabelNames}, {reMDOff, reasonMetadataDisallowed},
			{reBadLabels, reasonInvalidLabels}, {reEnforced, reasonMissingEnforcedLabel},
			{reStreamLimit, reasonStreamLimit},
		} {
			if m := st.re.FindStringSubmatch(seg); m != nil {
				r.reason, r.labels, r.stream = st.reason, m[1], true
				return r, true
			}
		}
		if reNoLabels.MatchString(seg) {
			r.reason, r.stream = reasonMissingLabels, true
			return r, true
		}
		return r, false
	}
	return r, true
}

func match(re *regexp.Regexp, s string, f func([]string) bool) bool {
	m := re.FindStringSubmatch(s)
	return m != nil && f(m)
}

func atoi(s string, out *int) bool {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return false
	}
	*out = n
	return true
}

// parseSec reads an RFC 3339 timestamp as the distributor prints it (whole
// seconds) into ns.
func parseSec(s string, out *int64) bool {
	t, err := time.Parse(time.RFC3339, strings.TrimSuffix(s, ","))
	if err != nil {
		return false
	}
	*out = t.UnixNano()
	return true
}

func parseIngester(body string, total []string) (refusal, bool) {
	r := refusal{message: body, ingester: true, labels: total[3]}
	if !atoi(total[1], &r.count) || !atoi(total[2], &r.total) || r.count < 1 {
		return r, false
	}
	for _, m := range reIngesterLine.FindAllStringSubmatch(body, -1) {
		ts := m[1]
		if i := strings.Index(ts, " m="); i >= 0 { // monotonic clock reading
			ts = ts[:i]
		}
		t, err := time.Parse(goTimeLayout, ts)
		if err != nil {
			return r, false
		}
		r.listedTS = append(r.listedTS, t.UnixNano())
		r.listedWhy = append(r.listedWhy, m[2])
	}
	r.reason = reasonUnknown
	if len(r.listedWhy) > 0 {
		why := strings.ToLower(r.listedWhy[len(r.listedWhy)-1])
		switch {
		case strings.HasPrefix(why, "entry too far behind"):
			r.reason = reasonTooFarBehind
			if m := reBehindBound.FindStringSubmatch(r.listedWhy[len(r.listedWhy)-1]); m != nil {
				parseSec(m[1], &r.bound)
			}
		case strings.HasPrefix(why, "per stream rate limit exceeded"):
			r.reason = reasonStreamRateLimit
		case strings.HasPrefix(why, "entry out of order"):
			r.reason = reasonOutOfOrder
		}
	}
	return r, true
}

// parseLabels reads a label set as Loki prints it: {name="go-quoted", ...}.
func parseLabels(s string) (push.LabelsAdapter, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	s = s[1 : len(s)-1]
	var out push.LabelsAdapter
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, false
		}
		name := strings.TrimSpace(s[:eq])
		q, err := strconv.QuotedPrefix(s[eq+1:])
		if err != nil {
			return nil, false
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil, false
		}
		out = append(out, push.LabelAdapter{Name: name, Value: v})
		s = strings.TrimLeft(s[eq+1+len(q):], ", ")
	}
	return out, len(out) > 0
}
