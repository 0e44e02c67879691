package analysis

import "time"

// Report is a triage's whole answer. Its JSON names are the machine output
// (`triage --format json`).
type Report struct {
	Service   string `json:"service"`
	Namespace string `json:"namespace,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
	// Mode is "revision" (baseline revision against the others in the same
	// window) or "window" (the window against the one before it).
	Mode       string    `json:"mode"`
	Baseline   Side      `json:"baseline"`
	Candidate  Side      `json:"candidate"`
	Quantiles  []float64 `json:"quantiles"`
	MinRatio   float64   `json:"min_ratio"`
	ErrorDelta float64   `json:"error_delta"`
	Alpha      float64   `json:"alpha"`
	Findings   []Finding `json:"findings"`
	// Operations is every span name compared, moved or not.
	Operations []Operation `json:"operations"`
	Logs       LogSummary  `json:"logs"`
	// Queries are the backend queries an online triage ran, in order.
	Queries  []Query  `json:"queries,omitempty"`
	Warnings []string `json:"warnings"`
	Notes    []string `json:"notes"`
	ExitCode int      `json:"exit_code"`
}

// Query is one request to a backend.
type Query struct {
	Backend string `json:"backend"` // prometheus, tempo, loki
	API     string `json:"api"`     // e.g. /api/v1/query
	Query   string `json:"query"`
	Answer  string `json:"answer"` // what came back, in a few words
}

// Side describes one side of the comparison.
type Side struct {
	Name      string    `json:"name"` // revision, or "previous window" / "window"
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Spans     int       `json:"spans"`
	Traces    int       `json:"traces"`
	Revisions []string  `json:"revisions"`
	Zones     []string  `json:"zones"`
	Pods      []string  `json:"pods"`
	// Fetched: Spans counts the span metrics, Traces only the traces
	// fetched to explain a move (online).
	Fetched bool `json:"traces_fetched_only,omitempty"`
}

// Operation is one span name (and kind) on both sides.
type Operation struct {
	Span      string     `json:"span"`
	Kind      string     `json:"kind"`
	NBaseline int        `json:"n_baseline"`
	NCand     int        `json:"n_candidate"`
	Latency   []Estimate `json:"latency"`
	Errors    Estimate   `json:"errors"`
	Moved     bool       `json:"moved"`
}

// Estimate is one comparison: a latency quantile (seconds) or the error
// share. Direction is "up", "down" or "" (did not move, or cannot tell).
type Estimate struct {
	Measure   string  `json:"measure"` // p50, p90, p99, errors
	Quantile  float64 `json:"quantile,omitempty"`
	Baseline  float64 `json:"baseline"`
	Candidate float64 `json:"candidate"`
	// Latency: the ratio candidate/baseline and its interval. Errors: the
	// difference of shares (candidate - baseline) and its 90% interval.
	Value     float64 `json:"value"`
	Low       float64 `json:"low"`
	High      float64 `json:"high"`
	PUp       float64 `json:"p_up"`
	PDown     float64 `json:"p_down"`
	Level     float64 `json:"ci_tail,omitempty"` // one-sided tail the latency interval was read at (Holm)
	Direction string  `json:"direction"`
	Tested    bool    `json:"tested"`
	Reason    string  `json:"reason,omitempty"` // why not tested
	score     float64
}

// Finding is one thing that moved, with where, why and links.
type Finding struct {
	Rank     int        `json:"rank"`
	Span     string     `json:"span"`
	Kind     string     `json:"kind"`
	Moves    []Estimate `json:"moves"`
	Headline string     `json:"headline"`
	// Cause is the child span (or the span's own code, "self") that took
	// most of the added time, or the risk pattern most over-represented in
	// the failing traces' logs.
	Cause      string       `json:"cause,omitempty"`
	Where      []Split      `json:"where"`
	WhereText  string       `json:"where_text"`
	Time       *Attribution `json:"time,omitempty"`
	Traces     []string     `json:"traces"`
	TraceCount int          `json:"trace_count"`
	Logs       FindingLogs  `json:"logs"`
	Explains   []Moved      `json:"explains,omitempty"` // child spans that moved with it
	Links      []Link       `json:"links"`

	score      float64 // how far it moved at least: ranks findings
	up         bool    // regressions rank before improvements
	candTraces map[[16]byte]bool
	baseTraces map[[16]byte]bool
	slowerThan float64 // the candidate's moved quantile: the TraceQL duration bound
	singleZone string  // the one zone that moved, if one of several
	singleRev  string  // the one revision that moved
}

// Moved names a child span that moved too, explained by its parent's finding.
type Moved struct {
	Span    string   `json:"span"`
	Kind    string   `json:"kind"`
	Measure Estimate `json:"measure"`
}

// Split is one dimension (revision, zone, pod) of where the move is.
type Split struct {
	Dimension string       `json:"dimension"`
	Values    []SplitValue `json:"values"`
	Summary   string       `json:"summary"`
}

// SplitValue is the move tested on the candidate spans of one value.
type SplitValue struct {
	Value     string     `json:"value"`
	N         int        `json:"n"`
	Against   string     `json:"against"`   // which baseline spans: "same zone" or "all"
	Estimates []Estimate `json:"estimates"` // each of the finding's moves, where it could be tested
	Moved     bool       `json:"moved"`
	TooFew    bool       `json:"too_few"`
	Revisions []string   `json:"revisions,omitempty"`
	Zone      string     `json:"zone,omitempty"`
}

// Attribution splits the added time of the slow spans among the spans of
// their subtrees by self time on the critical path.
type Attribution struct {
	Measure       string         `json:"measure"` // the quantile band compared, e.g. p99
	NCandidate    int            `json:"n_candidate"`
	NBaseline     int            `json:"n_baseline"`
	CandidateMean float64        `json:"candidate_mean"` // seconds, mean duration in the band
	BaselineMean  float64        `json:"baseline_mean"`
	Added         float64        `json:"added"`
	Parts         []Contribution `json:"parts"`
}

// Contribution is one span name's share of the added time.
type Contribution struct {
	Span          string  `json:"span"`
	Kind          string  `json:"kind"`
	Self          bool    `json:"self"` // the slow span's own code, between its children
	CandidateMean float64 `json:"candidate_mean"`
	BaselineMean  float64 `json:"baseline_mean"`
	Added         float64 `json:"added"`
	Share         float64 `json:"share"`
}

// FindingLogs are the log lines of a finding's traces.
type FindingLogs struct {
	Lines         int            `json:"lines"`
	BaselineLines int            `json:"baseline_lines"`
	Patterns      []PatternShift `json:"patterns"` // risk patterns over-represented in these traces
	Sample        []string       `json:"sample"`
}

// PatternShift compares how often a risk pattern occurs on two sides.
type PatternShift struct {
	Pattern   string  `json:"pattern"`
	Baseline  int     `json:"baseline"`
	Candidate int     `json:"candidate"`
	BaseShare float64 `json:"baseline_share"`
	CandShare float64 `json:"candidate_share"`
	Lift      float64 `json:"lift"`
	P         float64 `json:"p"`
	Rose      bool    `json:"rose"`
}

// LogSummary is log volume and risk patterns over the whole windows.
type LogSummary struct {
	BaselineLines     int            `json:"baseline_lines"`
	CandidateLines    int            `json:"candidate_lines"`
	BaselinePerTrace  float64        `json:"baseline_lines_per_trace"`
	CandidatePerTrace float64        `json:"candidate_lines_per_trace"`
	Untimed           int            `json:"untimed,omitempty"` // window mode: lines without a time, left out
	Patterns          []PatternShift `json:"patterns"`
}

// Link is a Grafana Explore link and the query it opens.
type Link struct {
	Kind       string `json:"kind"` // metrics, trace, traces, logs
	Title      string `json:"title"`
	Datasource string `json:"datasource"`
	Query      string `json:"query"`
	URL        string `json:"url"`
}
