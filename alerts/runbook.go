package alerts

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/opsight/opsight/internal/riskpatterns"
)

// advice is the runbook text of a risk pattern beyond its catalogue summary.
type advice struct {
	Means, Do string
}

// riskAdvice has one entry per catalogue id; a test fails when an id of
// riskpatterns.Default has none, so a new pattern cannot ship without a runbook.
var riskAdvice = map[string]advice{
	"panic": {"A goroutine panicked. controller-runtime recovers panics inside Reconcile and returns an error, so the controller keeps running, but the object is not reconciled; outside Reconcile the process exits and restarts.",
		"Read the stack trace (the lines after the panic share its trace_id); fix the nil map, index or type assertion it points to. Check restarts with `kubectl get pod -n <ns>`."},
	"fatal_error": {"The Go runtime or the logger reported a fatal error (concurrent map writes, out of stack, logger Fatal/DPanic). The process exits.",
		"Read the goroutine dump that follows; concurrent map access needs a mutex; DPanic/Fatal calls in the operator code need an error return instead. Check the restart count."},
	"out_of_memory": {"The process could not allocate memory or was OOM-killed.",
		"Compare the memory panel with the container limit; look for caches of unbounded informers (watch all namespaces, unfiltered Secrets/ConfigMaps) and raise the limit or add label/field selectors to the cache."},
	"leader_election_lost": {"The replica lost its lease (could not renew it in time, usually API server latency or a long GC pause). controller-runtime exits so another replica takes over.",
		"Check OperatorLeaderElectionLost and API latency; if renewals time out, raise LeaseDuration/RenewDeadline or the CPU request. Frequent losses show as restarts."},
	"resource_version_too_old": {"A watch asked for a resourceVersion etcd no longer has; the informer relists (expensive on large clusters).",
		"Occasional lines are normal after network blips. Many: the operator's watches are slow to consume (CPU throttling, blocked event handlers) or the API server restarted; check the watch lag panel."},
	"etcd_compacted": {"etcd compacted the revision a watch wanted; the reflector relists.",
		"Same as resource_version_too_old: confirm the watch lag and CPU; a burst right after an etcd compaction is harmless."},
	"etcd_timeout": {"The API server could not get an answer from etcd in time; writes from the operator fail.",
		"This is a control-plane problem: check the API server and etcd health (apiserver_request_duration_seconds, etcd disk latency). The operator retries; watch the reconcile error ratio."},
	"deadline_exceeded": {"A call (API request, webhook, cloud API) ran past its context deadline.",
		"Open the trace of a matching line: the slow span names the callee. Check API latency and any external dependency; raise the timeout only if the callee is known to be slow."},
	"connection_reset": {"A peer (API server, webhook, external service) closed a connection abruptly.",
		"Sporadic resets during API server rollouts are expected. Persistent: check load balancers, network policies and the peer's restarts."},
	"connection_refused": {"Nothing listened at the address the operator dialled.",
		"Find the target in the line; check that Service and endpoints exist (`kubectl get endpoints`), and the target pod is ready. During API server restarts this is transient."},
	"io_timeout": {"A network read or write timed out.",
		"Open the trace to find the callee; check network policies, DNS and the callee's latency."},
	"tls_handshake_timeout": {"TLS handshakes with the API server or a webhook take too long, usually an overloaded API server or lost packets.",
		"Check API server CPU and request latency; check the node's network. Transient during control-plane upgrades."},
	"x509_error": {"A certificate is invalid, expired or signed by an unknown authority; the connection is refused and nothing will succeed until fixed.",
		"Read the subject in the line; check expiry (`openssl x509 -enddate`), the CA bundle of webhooks (caBundle) and cert-manager Certificates."},
	"client_throttling": {"client-go's own rate limiter (QPS/Burst) delayed requests; the operator is slower than it could be.",
		"Confirm on the saturation row (client-side throttling) and API requests/s; reduce calls (use the cache for reads, avoid relists) or raise QPS/Burst in the rest.Config."},
	"object_modified_conflict": {"An update used a stale resourceVersion (optimistic concurrency); the reconcile is retried.",
		"Normal in moderation. Many: two writers fight over the object (two controllers or an external tool); use server-side apply or patch instead of update, and requeue on conflict without logging an error."},
	"api_forbidden": {"RBAC denied the operator an API call; the reconcile fails until the Role/ClusterRole allows it.",
		"Read verb, resource and namespace in the line; `kubectl auth can-i <verb> <resource> --as system:serviceaccount:<ns>:<sa>`; add the rule to the chart's RBAC."},
	"api_unauthorized": {"The API server rejected the operator's credentials (expired or revoked token).",
		"Check the ServiceAccount token projection and its expiry; restart the pod to reload a rotated token; check the API server's authentication logs."},
	"reconciler_error": {"A reconcile returned an error; controller-runtime requeues it with exponential backoff.",
		"Confirm on the errors row (reconcile error ratio by controller); open the line's trace for the failing step; the error text says which object and call."},
	"watch_error": {"A watch ended or failed; the informer re-establishes it.",
		"Occasional lines are normal (API server timeouts close watches). Bursts: API server restarts or network trouble; check watch lag."},
	"list_watch_failed": {"An informer cannot list or watch a resource: its cache stays stale and dependent controllers stall.",
		"Usually RBAC (see api_forbidden) or a CRD that is not installed; read the resource in the line and check `kubectl get crd`."},
	"webhook_failure": {"The API server could not call an admission webhook; requests that need it fail (failurePolicy Fail).",
		"Check the webhook Service, its pods and its certificate (x509_error); `kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations`."},
	"admission_denied": {"An admission webhook or policy (Kyverno, Gatekeeper, ValidatingAdmissionPolicy) rejected a request of the operator.",
		"Read the denial message; either the operator builds an invalid object (fix the code) or the policy must allow it."},
	"nil_pointer": {"A nil pointer dereference: a panic (see panic) caused by an unchecked nil, often an optional field of a custom resource.",
		"Open the stack trace; guard the field; add a test with the field absent."},
	"goroutine_dump": {"The process printed goroutine stacks, as it does on a panic, fatal error or SIGQUIT.",
		"Find the first goroutine (the one that panicked) and read its frames; correlate with panic/fatal_error lines of the same pod."},
	"rate_limited_429": {"The API server (priority and fairness) or a backend answered 429 Too Many Requests.",
		"Confirm on the API errors panel (code 429); reduce request volume or give the operator its own FlowSchema/PriorityLevelConfiguration."},
	"cache_sync_timeout": {"Informers did not sync at start-up; the manager gives up and the controller does not run.",
		"Usually RBAC for list/watch or a missing CRD; see list_watch_failed lines just before. Large caches may need a longer CacheSyncTimeout."},
}

// RiskRunbook renders docs/runbooks/risk-patterns.md from the catalogue.
func RiskRunbook() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<!-- Generated by ` + "`go generate ./alerts`" + ` from internal/riskpatterns.Default: do not edit. -->
# Log risk patterns

The opsight sidecar matches every operator log line against the risk pattern
catalogue (case-insensitive substrings) and writes the matching ids, comma
separated, into the Loki structured metadata ` + "`risk`" + ` and the counter
` + "`opsight_log_risk_total{pattern}`" + `. The Loki ruler alerts
(` + "`alerts/rules/loki-risk-patterns.yaml`" + `) link here.

How to look at any of them:
- Dashboard **Operator golden signals**, row *Errors*, panel *Risk patterns in logs*: counts per pattern over time.
- Same dashboard, row *Logs*: choose the pattern in the *risk pattern* variable; each line's ` + "`trace_id`" + ` opens its trace in Tempo.
- LogQL: ` + "`{service_name=~\".+\", namespace=\"<ns>\"} | risk=~\"(.*,)?<id>(,.*)?\"`" + `.

| id | severity | alert when |
|---|---|---|
`)
	for _, p := range riskpatterns.Default {
		t := RiskThresholds[p.Severity]
		when := fmt.Sprintf("more than %d lines per pod in %s", t.Count, t.Window)
		if t.Count == 0 {
			when = "any line within " + t.Window
		}
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s |\n", p.ID, p.RunbookAnchor(), p.Severity, when)
	}
	for _, p := range riskpatterns.Default {
		a, ok := riskAdvice[p.ID]
		if !ok {
			return nil, fmt.Errorf("risk pattern %q has no runbook text: add it to riskAdvice in alerts/runbook.go", p.ID)
		}
		needles := make([]string, len(p.Needles))
		for i, n := range p.Needles {
			needles[i] = "`" + strings.ReplaceAll(n, "`", "'") + "`"
		}
		fmt.Fprintf(&b, "\n<a id=\"%s\"></a>\n## %s\n\nSeverity **%s**; alert `%s`. Matches lines containing (any case): %s.\n\n",
			p.RunbookAnchor(), p.ID, p.Severity, RiskAlertName(p.ID), strings.Join(needles, ", "))
		fmt.Fprintf(&b, "**What it means.** %s %s\n\n", p.Summary, a.Means)
		fmt.Fprintf(&b, "**Confirm.** On *Operator golden signals* set *risk pattern* = `%s`: the *Risk patterns in logs* panel shows when it started and in which revision; the logs panel shows the lines, each with its trace.\n\n", p.ID)
		fmt.Fprintf(&b, "**What to do.** %s\n", a.Do)
	}
	return b.Bytes(), nil
}
