// Package riskpatterns is the catalogue of log risk patterns shared by the
// sidecar's matcher and counters, the Loki alert rules and the runbooks.
// Ids are stable (CONVENTIONS.md): never rename one without every reader.
package riskpatterns

// Severity of a pattern, as used by alert rules.
type Severity string

const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Pattern is one risk pattern. A line matches when it contains any of
// Needles, compared ASCII case-insensitively. Needles are plain substrings
// (no regular expressions) so all patterns run in one multi-pattern pass.
type Pattern struct {
	ID       string
	Severity Severity
	Needles  []string
	Summary  string
}

// RunbookAnchor is the anchor of the pattern's section in docs/runbooks/risk-patterns.md.
func (p Pattern) RunbookAnchor() string { return "risk-" + kebab(p.ID) }

func kebab(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '_' {
			b[i] = '-'
		}
	}
	return string(b)
}

// Default is the default set, in a stable order.
var Default = []Pattern{
	{"panic", Critical, []string{"observed a panic", "panic:", "panic(", "recovered from panic"}, "The operator panicked (controller-runtime recovered it or the process died)."},
	{"fatal_error", Critical, []string{"fatal error:", `"level":"fatal"`, `"level":"dpanic"`}, "A fatal runtime error: the process is about to exit."},
	{"out_of_memory", Critical, []string{"out of memory", "oomkilled", "cannot allocate memory"}, "The process ran out of memory."},
	{"leader_election_lost", Critical, []string{"leader election lost", "leaderelection lost", "failed to renew lease", "stopped leading"}, "The operator lost its leader lease; reconciles stop until it is re-acquired."},
	{"resource_version_too_old", Warning, []string{"too old resource version", "resourceversion too old"}, "A watch fell behind etcd compaction and must relist."},
	{"etcd_compacted", Warning, []string{"mvcc: required revision has been compacted"}, "etcd compacted the revision a watch asked for."},
	{"etcd_timeout", Critical, []string{"etcdserver: request timed out", "etcd request timed out"}, "etcd is too slow to answer the API server."},
	{"deadline_exceeded", Warning, []string{"context deadline exceeded", "deadline_exceeded"}, "A call ran past its deadline."},
	{"connection_reset", Warning, []string{"connection reset by peer"}, "A peer closed the connection abruptly."},
	{"connection_refused", Warning, []string{"connection refused"}, "Nothing listens where the operator connects."},
	{"io_timeout", Warning, []string{"i/o timeout"}, "A network read or write timed out."},
	{"tls_handshake_timeout", Warning, []string{"tls handshake timeout"}, "TLS handshakes take too long (overloaded API server or network)."},
	{"x509_error", Critical, []string{"x509:"}, "A certificate is invalid, expired or signed by an unknown authority."},
	{"client_throttling", Warning, []string{"due to client-side throttling"}, "client-go's rate limiter delays API requests."},
	{"object_modified_conflict", Info, []string{"the object has been modified"}, "Optimistic-concurrency conflict on update; retried by the reconciler."},
	{"api_forbidden", Critical, []string{"is forbidden:", "forbidden: user", `"reason":"forbidden"`}, "RBAC denies the operator an API call."},
	{"api_unauthorized", Critical, []string{"unauthorized", "401 unauthorized"}, "The API server rejected the operator's credentials."},
	{"reconciler_error", Warning, []string{"reconciler error"}, "A reconcile returned an error and will be retried with backoff."},
	{"watch_error", Warning, []string{"watch channel closed", "unexpected watch close", "watch chan error", "ended with: an error"}, "A watch ended or failed; the informer re-establishes it."},
	{"list_watch_failed", Warning, []string{"failed to list", "failed to watch"}, "An informer cannot list or watch a resource."},
	{"webhook_failure", Warning, []string{"failed calling webhook", "failed to call webhook"}, "An admission webhook call failed."},
	{"admission_denied", Warning, []string{"denied the request", "admission denied"}, "An admission webhook denied a request."},
	{"nil_pointer", Critical, []string{"nil pointer dereference", "invalid memory address"}, "A nil pointer dereference."},
	{"goroutine_dump", Critical, []string{"[running]:", "[chan receive]:", "[select]:", "[semacquire", "[io wait]:", "[syscall]:"}, "A goroutine stack dump (panic or fatal error output)."},
	{"rate_limited_429", Warning, []string{"too many requests", "status code 429", "statuscode=429"}, "The API server or a backend answered 429 Too Many Requests."},
	{"cache_sync_timeout", Critical, []string{"timed out waiting for cache to be synced", "failed to wait for caches to sync"}, "Informers did not sync at start-up; the controller will not run."},
}

// ByID returns the default pattern with the id, if any.
func ByID(id string) (Pattern, bool) {
	for _, p := range Default {
		if p.ID == id {
			return p, true
		}
	}
	return Pattern{}, false
}
