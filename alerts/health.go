package alerts

import (
	"fmt"

	"github.com/opsight/opsight/internal/conventions"
)

// Thresholds of the operator health alerts.
const (
	WorkqueueDepthMax      = 100 // items waiting, sustained 15 m
	WorkqueueDepthGrowing  = 10  // minimum depth for the growth alert
	WorkqueueWaitP99Max    = 10  // seconds an item waits before a worker takes it
	WorkqueueWaitGrowth    = 3   // mean wait over 10 m against the 6 h mean
	WorkqueueWaitGrowthMin = 1   // seconds: ignore growth of tiny waits
)

// qBy groups workqueue metrics per controller (controller-runtime >= 0.19
// labels them controller and name); leases are grouped by their name.
const (
	qBy     = "cluster, namespace, controller"
	leaseBy = "cluster, namespace, name"
)

func healthGroups() []Group {
	golden := func(name, summary, desc string, labels ...string) map[string]string {
		return annotations(summary, desc, runbookURL(RunbookHealth, alertAnchor(name)), dashboardURL(conventions.DashboardGoldenSignals, labels...))
	}
	wq := conventions.MetricWorkqueueQueueDur
	le := conventions.MetricLeaderElection
	rules := []Rule{
		{
			Alert:  "OperatorWorkqueueDepthHigh",
			Expr:   fmt.Sprintf("sum by (%s) (%s) > %d", qBy, conventions.MetricWorkqueueDepth, WorkqueueDepthMax),
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: golden("OperatorWorkqueueDepthHigh",
				"Workqueue {{ $labels.controller }} holds {{ $value }} items ({{ $labels.namespace }})",
				fmt.Sprintf("More than %d items have waited in the workqueue of controller {{ $labels.controller }} for 15 minutes: reconciles are slower than the events that trigger them.", WorkqueueDepthMax),
				"cluster", "namespace", "controller"),
		},
		{
			Alert: "OperatorWorkqueueDepthGrowing",
			Expr: fmt.Sprintf("sum by (%[1]s) (deriv(%[2]s[30m])) > 0\nand\nsum by (%[1]s) (%[2]s) > %[3]d",
				qBy, conventions.MetricWorkqueueDepth, WorkqueueDepthGrowing),
			For:    "30m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: golden("OperatorWorkqueueDepthGrowing",
				"Workqueue {{ $labels.controller }} keeps growing ({{ $labels.namespace }})",
				"The workqueue of controller {{ $labels.controller }} has grown for 30 minutes and holds more than 10 items: the controller is falling behind.",
				"cluster", "namespace", "controller"),
		},
		{
			Alert: "OperatorWorkqueueWaitHigh",
			Expr: fmt.Sprintf("histogram_quantile(0.99, sum by (%s, le) (rate(%s_bucket[5m]))) > %d",
				qBy, wq, WorkqueueWaitP99Max),
			For:    "10m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: golden("OperatorWorkqueueWaitHigh",
				"Events wait {{ $value | humanizeDuration }} in workqueue {{ $labels.controller }} (p99)",
				fmt.Sprintf("The p99 time an item waits in the workqueue of controller {{ $labels.controller }} before a worker picks it up is above %ds: changes take that long to be acted on (watch lag).", WorkqueueWaitP99Max),
				"cluster", "namespace", "controller"),
		},
		{
			Alert: "OperatorWorkqueueWaitGrowing",
			Expr: fmt.Sprintf(`(
  sum by (%[1]s) (rate(%[2]s_sum[10m])) / sum by (%[1]s) (rate(%[2]s_count[10m]))
)
> %[3]d * (
  sum by (%[1]s) (rate(%[2]s_sum[6h])) / sum by (%[1]s) (rate(%[2]s_count[6h]))
)
and
sum by (%[1]s) (rate(%[2]s_sum[10m])) / sum by (%[1]s) (rate(%[2]s_count[10m])) > %[4]d`,
				qBy, wq, WorkqueueWaitGrowth, WorkqueueWaitGrowthMin),
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: golden("OperatorWorkqueueWaitGrowing",
				"Queue wait of {{ $labels.controller }} grew to {{ $value | humanizeDuration }} ({{ $labels.namespace }})",
				fmt.Sprintf("The mean time an item waits in the workqueue of controller {{ $labels.controller }} over 10 minutes is more than %dx its 6-hour mean and above %ds.", WorkqueueWaitGrowth, WorkqueueWaitGrowthMin),
				"cluster", "namespace", "controller"),
		},
		{
			// Lost: some replica led in the last 10 m but none leads now (the
			// leader stepped down or died and nobody took over). No leader: only
			// standbys report. Either way nothing reconciles.
			Alert: "OperatorLeaderElectionLost",
			Expr: fmt.Sprintf(`(
  max by (%[1]s) (max_over_time(%[2]s[10m])) == 1
  unless on (%[1]s)
  max by (%[1]s) (%[2]s) == 1
)
or
max by (%[1]s) (%[2]s) == 0`, leaseBy, le),
			For:    "2m",
			Labels: map[string]string{"severity": "critical"},
			Annotations: golden("OperatorLeaderElectionLost",
				"No replica holds the leader lease {{ $labels.name }} ({{ $labels.namespace }})",
				"leader_election_master_status shows no leader for lease {{ $labels.name }} for 2 minutes: the operator does not reconcile anything until a replica acquires the lease.",
				"cluster", "namespace"),
		},
	}
	return []Group{{Name: "opsight-operator-health.alerts", Rules: rules}}
}
