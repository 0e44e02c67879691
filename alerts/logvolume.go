package alerts

import (
	"fmt"

	c "github.com/opsight/opsight/internal/conventions"
)

// Log volume per service: recorded rates, two baselines and alerts on a
// relative jump or drop against both, with absolute floors.
//
// The sidecar's counters carry service_name as a target label: the webhook
// writes the pod's service identity into the annotation
// opsight.dev/service-name and the chart's PodMonitor copies it onto every
// series of the sidecar (honorLabels keeps the span metrics' own label).
const (
	// LogVolumeSpikeFactor: the 5-minute rate must exceed both baselines by
	// this factor. 4 sits below the 10× jump of a hot loop or retry storm and
	// above what a day's ramp or a release's extra logging usually adds.
	LogVolumeSpikeFactor = 4
	// LogVolumeSpikeMinRate (lines/s per service): below it no spike pages,
	// whatever the ratio (1 → 5 lines a minute is 5× but nothing to act on).
	LogVolumeSpikeMinRate = 1
	// LogVolumeDropFactor: the rate fell below both baselines divided by
	// this (a 10× drop, or logging stopped while the counters are scraped).
	LogVolumeDropFactor = 10
	// LogVolumeDropMinBaseline (lines/s): only a service that logged at least
	// this much (both baselines) can drop; a quiet one going silent is normal.
	LogVolumeDropMinBaseline = 1
	// LogVolumeFor: a restart's start-up burst lasts a few minutes; a hot
	// loop, a retry storm or a stuck operator lasts longer.
	LogVolumeFor = "15m"
	// LogVolumeYesterdayOffset centres the one-hour baseline window on this
	// time yesterday ([1h] ending 23h30m ago), so a daily job that starts
	// at the same time each day is in yesterday's window when it starts today.
	LogVolumeYesterdayOffset = "23h30m"
	// LogVolumeMeanWindow is the trailing mean: it guards the yesterday
	// baseline against an unusual yesterday (an outage, an incident).
	LogVolumeMeanWindow = "1d"
)

// Labels of the per-service series, the Loki stream labels of the same name.
var volBy = c.LabelCluster + ", " + c.LabelNamespace + ", " + c.LabelServiceName

// Recorded series of the log volume.
const (
	RecordLogVolume          = "service:opsight_log_records:rate5m"
	RecordLogVolumeYesterday = "service:opsight_log_records:rate1h_offset1d"
	RecordLogVolumeMean      = "service:opsight_log_records:rate5m_avg1d"
	RecordLogVolumeByLevel   = "service_level:opsight_log_records:rate5m"
	RecordLogRiskByPattern   = "service_pattern:opsight_log_risk:rate5m"
	// RecordLokiLogVolume is the Loki ruler's equivalent of RecordLogVolume,
	// counted from the lines Loki holds (remote-written to Prometheus).
	RecordLokiLogVolume = "service:loki_log_volume_by_service:rate1m"
)

// withService selects the series that carry a service (a pod injected before
// the webhook wrote opsight.dev/service-name has none: left out, not summed
// into a nameless service).
func withService(metric string) string { return metric + `{` + c.LabelServiceName + `!=""}` }

func logVolumeRules() []Rule {
	records, risk := withService(c.MetricLogRecords), withService(c.MetricLogRisk)
	return []Rule{
		{Record: RecordLogVolume, Expr: fmt.Sprintf("sum by (%s) (rate(%s[5m]))", volBy, records)},
		{Record: RecordLogVolumeYesterday, Expr: fmt.Sprintf("sum by (%s) (rate(%s[1h] offset %s))", volBy, records, LogVolumeYesterdayOffset)},
		{Record: RecordLogVolumeMean, Expr: fmt.Sprintf("avg_over_time(%s[%s])", RecordLogVolume, LogVolumeMeanWindow)},
		{Record: RecordLogVolumeByLevel, Expr: fmt.Sprintf("sum by (%s, level) (rate(%s[5m]))", volBy, records)},
		{Record: RecordLogRiskByPattern, Expr: fmt.Sprintf("sum by (%s, pattern) (rate(%s[5m]))", volBy, risk)},
	}
}

// LogVolumeSpikeExpr fires with the ratio to the same hour yesterday. A
// service without yesterday's data (new, or renamed) has no ratio: silent.
func LogVolumeSpikeExpr() string {
	return fmt.Sprintf("%[1]s / %[2]s > %[4]d\nand %[1]s > %[4]d * %[3]s\nand %[1]s > %[5]d",
		RecordLogVolume, RecordLogVolumeYesterday, RecordLogVolumeMean, LogVolumeSpikeFactor, LogVolumeSpikeMinRate)
}

// LogVolumeDropExpr fires with the ratio to the same hour yesterday.
func LogVolumeDropExpr() string {
	return fmt.Sprintf("%[1]s / %[2]s < 1 / %[4]d\nand %[1]s < %[3]s / %[4]d\nand %[2]s >= %[5]d\nand %[3]s >= %[5]d",
		RecordLogVolume, RecordLogVolumeYesterday, RecordLogVolumeMean, LogVolumeDropFactor, LogVolumeDropMinBaseline)
}

func logVolumeGroups() []Group {
	ann := func(name, summary, desc string) map[string]string {
		return annotations(summary, desc, runbookURL(RunbookVolume, alertAnchor(name)),
			dashboardURL(c.DashboardGoldenSignals, "cluster", "namespace"))
	}
	alerts := []Rule{
		{
			Alert:  "OperatorLogVolumeSpike",
			Expr:   LogVolumeSpikeExpr(),
			For:    LogVolumeFor,
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OperatorLogVolumeSpike",
				"{{ $labels.service_name }} logs {{ $value | humanize }}× as much as at this hour yesterday",
				fmt.Sprintf("For %s the operator service {{ $labels.service_name }} ({{ $labels.namespace }}) has written more than %d× its log lines of the same hour yesterday and of its %s mean, and more than %d line/s: a hot loop, a retry storm or an error repeated on every reconcile. The risk-pattern split on the dashboard shows which errors grew.",
					LogVolumeFor, LogVolumeSpikeFactor, LogVolumeMeanWindow, LogVolumeSpikeMinRate)),
		},
		{
			Alert:  "OperatorLogVolumeDrop",
			Expr:   LogVolumeDropExpr(),
			For:    LogVolumeFor,
			Labels: map[string]string{"severity": "warning"},
			Annotations: ann("OperatorLogVolumeDrop",
				"{{ $labels.service_name }} logs {{ $value | humanizePercentage }} of its volume at this hour yesterday",
				fmt.Sprintf("For %s the operator service {{ $labels.service_name }} ({{ $labels.namespace }}) has written less than 1/%d of its log lines of the same hour yesterday and of its %s mean, while the sidecar is still scraped: the operator is stuck, lost its leader lease for good, or its logging changed.",
					LogVolumeFor, LogVolumeDropFactor, LogVolumeMeanWindow)),
		},
	}
	return []Group{
		{Name: "opsight-log-volume.rules", Rules: logVolumeRules()},
		{Name: "opsight-log-volume.alerts", Rules: alerts},
	}
}

// LokiLogVolumeSpikeAlert is the Loki ruler's OperatorLogVolumeSpike, for
// a cluster whose log volume is better counted by Loki than by the sidecars'
// counters (or that has no Prometheus rules). A distinct name: where both
// rulers run, an Alertmanager inhibit rule keeps one page per spike (see
// docs/runbooks/operator-log-volume.md).
const LokiLogVolumeSpikeAlert = "OperatorLogVolumeSpikeLoki"

// lokiVolumeAlertInterval is the evaluation interval of the Loki spike
// alert. Each evaluation reads the last 5 minutes and an hour of yesterday,
// so each line is read once as "now" and 12 times as a baseline; every
// minute it would be 5 and 60 times.
const lokiVolumeAlertInterval = "5m"

// LokiLogVolumeSpikeExpr is OperatorLogVolumeSpike in LogQL: lines/s of the
// last 5 minutes above LogVolumeSpikeFactor× the same hour yesterday (the
// hour centred a day ago, [1h] offset 23h30m, as the Prometheus baseline)
// and above LogVolumeSpikeMinRate. Its value is the ratio. Without the
// trailing one-day mean (a [1d] range every 5 minutes would read each line
// 288 times): the Prometheus alert's guard against an unusually quiet
// yesterday is left out, so after a day of outage this one can fire on a
// normal day. A service with no lines yesterday has no ratio: silent.
func LokiLogVolumeSpikeExpr() string {
	rate := func(rng, offset string) string {
		o := ""
		if offset != "" {
			o = " offset " + offset
		}
		return fmt.Sprintf(`sum by (%s) (rate({%s=~".+"} [%s]%s))`, volBy, c.LabelServiceName, rng, o)
	}
	now := rate("5m", "")
	return fmt.Sprintf("%s\n/\n%s\n> %d\nand\n%s\n> %d",
		now, rate("1h", LogVolumeYesterdayOffset), LogVolumeSpikeFactor, now, LogVolumeSpikeMinRate)
}

func lokiLogVolumeAlertGroups() []Group {
	return []Group{{Name: "opsight-log-volume.loki-alerts", Interval: lokiVolumeAlertInterval, Rules: []Rule{{
		Alert:  LokiLogVolumeSpikeAlert,
		Expr:   LokiLogVolumeSpikeExpr(),
		For:    LogVolumeFor,
		Labels: map[string]string{"severity": "warning"},
		Annotations: annotations(
			"{{ $labels.service_name }} logs {{ $value | humanize }}× as much as at this hour yesterday (Loki)",
			fmt.Sprintf("For %s the operator service {{ $labels.service_name }} ({{ $labels.namespace }}) has sent Loki more than %d× its log lines of the same hour yesterday, and more than %d line/s: a hot loop, a retry storm or an error repeated on every reconcile. Counted by the Loki ruler; OperatorLogVolumeSpike is the same alert from the sidecar's counters in Prometheus (which also checks the one-day mean).",
				LogVolumeFor, LogVolumeSpikeFactor, LogVolumeSpikeMinRate),
			runbookURL(RunbookVolume, alertAnchor(LokiLogVolumeSpikeAlert)),
			dashboardURL(c.DashboardGoldenSignals, "cluster", "namespace")),
	}}}}
}

// LokiLogVolumeExpr is the LogQL of RecordLokiLogVolume: lines per second
// per service from every stream the sidecar writes. The range equals the
// group's interval, so the ruler reads each line once; a range of an hour a
// day ago or of a whole day, evaluated every minute, would read the logs 60
// or 1440 times over, so the baselines are left to Prometheus (see
// docs/runbooks/operator-log-volume.md).
func LokiLogVolumeExpr() string {
	return fmt.Sprintf(`sum by (%s) (rate({%s=~".+"} [%s]))`, volBy, c.LabelServiceName, lokiVolumeInterval)
}

const lokiVolumeInterval = "1m"

func lokiLogVolumeGroups() []Group {
	return []Group{{Name: "opsight-log-volume.loki-rules", Interval: lokiVolumeInterval, Rules: []Rule{
		{Record: RecordLokiLogVolume, Expr: LokiLogVolumeExpr()},
	}}}
}
