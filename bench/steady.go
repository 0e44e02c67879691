package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/opsight/opsight/internal/simoperator"
)

// steadyResult is opsight's footprint at a steady load.
type steadyResult struct {
	rssMedian, rssMax, peak int64
	anonMedian, fileMedian  int64 // the RSS median's parts
	wsMedian, wsMax         int64 // cgroup working set (with -steady-memlimit)
	oomKills                int64
	serverCores             float64 // tools/podlogs, with -steady-source api
	cores                   float64 // CPU time / wall time over the second half
	linesIn, linesOut       int64
	spansIn, spansOut       int64
}

// runSteady runs the sidecar as the chart does (env mode: file_storage
// persistent queues to Loki and an OTLP trace backend, both the sink here,
// the otlp receiver, span metrics) while a generator
// writes steadyLines log lines and sends steadySpans spans a second, in
// 100 ms ticks; the spans belong to reconciles whose lines are in the log, so
// the late join works as in production. RSS is sampled every second.
func runSteady(o options, bin string, sk *sink, work string) (steadyResult, error) {
	var res steadyResult
	dir := filepath.Join(work, "steady")
	otlpHTTP, err := freeAddr()
	if err != nil {
		return res, err
	}
	grpcAddr, _ := freeAddr()
	metricsAddr, _ := freeAddr()
	pod := "etcd-operator-steady"
	logDir := simoperator.PodLogDir(filepath.Join(dir, "pods"), "ops", pod, "uid-steady", "manager")
	w, err := simoperator.NewCRIWriter(logDir, 10<<20, 5)
	if err != nil {
		return res, err
	}
	defer w.Close()
	logf, err := os.Create(filepath.Join(dir, "sidecar.log"))
	if err != nil {
		return res, err
	}
	defer logf.Close()
	sk.reset(0)
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(),
		"OPSIGHT_STATE_DIR="+filepath.Join(dir, "state"),
		"OPSIGHT_REVISION=v1.0.0",
		"OPSIGHT_CLUSTER=bench",
		"OPSIGHT_LOKI_URL="+sk.URL()+"/loki/api/v1/push",
		"OPSIGHT_TRACES_URL="+sk.URL(),
		"OPSIGHT_OTLP_HTTP_ADDR="+otlpHTTP,
		"OPSIGHT_OTLP_GRPC_ADDR="+grpcAddr,
		"OPSIGHT_METRICS_ADDR="+metricsAddr,
		"POD_NAMESPACE=ops", "POD_NAME="+pod, "CONTAINER_NAME=manager",
	)
	var server *exec.Cmd
	if o.source == "api" {
		env, srv, err := startPodLogs(o.podlogsBin, dir)
		if err != nil {
			return res, err
		}
		server = srv
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		cmd.Env = append(cmd.Env, env...)
	} else {
		cmd.Env = append(cmd.Env, "OPSIGHT_LOG_INCLUDE="+filepath.Join(dir, "pods", "*", "*", "*.log*"))
	}
	var cg *memCgroup
	if o.memLimitMiB > 0 {
		if cg, err = newMemCgroup(int64(o.memLimitMiB) << 20); err != nil {
			return res, err
		}
		defer cg.remove()
		if err := cg.wrap(cmd); err != nil {
			return res, err
		}
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMEMLIMIT=%d", int64(o.memLimitMiB)<<20*9/10))
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer stop(cmd, exited)
	if err := waitHTTP("http://"+metricsAddr+"/metrics", 30*time.Second); err != nil {
		return res, fmt.Errorf("sidecar not ready: %v (log %s)", err, logf.Name())
	}
	if err := waitHTTP("http://"+otlpHTTP+"/v1/traces", 30*time.Second); err != nil {
		return res, fmt.Errorf("sidecar OTLP receiver not ready: %v (log %s)", err, logf.Name())
	}

	// One reconcile every lines/spans lines, each with its span: every keyed
	// line finds its span (see docs/benchmarks.md for partial tracing).
	g := newLineGen(7)
	g.per = max(3, o.steadyLines/max(1, o.steadySpans))
	client := &http.Client{Timeout: 5 * time.Second}
	const tick = 100 * time.Millisecond
	linesPerTick, spansPerTick := o.steadyLines/10, o.steadySpans/10
	start := time.Now()
	half := start.Add(o.steady / 2)
	var rss, anon, file, ws []int64
	var cpuHalf, serverHalf time.Duration
	nextSample := start.Add(time.Second)
	for t := start; time.Since(start) < o.steady; t = t.Add(tick) {
		time.Sleep(time.Until(t))
		select {
		case <-exited:
			return res, fmt.Errorf("sidecar exited during the steady run: %v (log %s)", waitErr, logf.Name())
		default:
		}
		recs := map[string]reconcile{}
		now := time.Now()
		for i := 0; i < linesPerTick; i++ {
			line := g.next()
			if _, seen := recs[g.rec.id]; !seen && len(recs) < spansPerTick && g.rec.sampled < o.traced {
				recs[g.rec.id] = g.rec
			}
			if err := w.WriteLine(now, "stderr", string(line)); err != nil {
				return res, err
			}
		}
		res.linesIn += int64(linesPerTick)
		n, err := sendSpans(client, "http://"+otlpHTTP, recs, now)
		if err != nil {
			return res, err
		}
		res.spansIn += int64(n)
		if time.Now().After(nextSample) {
			nextSample = nextSample.Add(time.Second)
			ps, err := readProc(cmd.Process.Pid)
			if err != nil {
				return res, err
			}
			if time.Now().After(half) {
				if cpuHalf == 0 {
					cpuHalf = ps.cpu
					if server != nil {
						if sp, err := readProc(server.Process.Pid); err == nil {
							serverHalf = sp.cpu
						}
					}
				}
				rss = append(rss, ps.rss)
				anon, file = append(anon, ps.rssAnon), append(file, ps.rssFile)
				if cg != nil {
					ws = append(ws, cg.workingSet())
				}
			}
		}
	}
	end := time.Now()
	ps, err := readProc(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.peak = ps.peakRSS
	if server != nil {
		if sp, err := readProc(server.Process.Pid); err == nil {
			res.serverCores = (sp.cpu - serverHalf).Seconds() / end.Sub(half).Seconds()
		}
	}
	res.cores = (ps.cpu - cpuHalf).Seconds() / end.Sub(half).Seconds()
	for _, v := range [][]int64{rss, anon, file, ws} {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	}
	if len(rss) > 0 {
		res.rssMedian, res.rssMax = rss[len(rss)/2], rss[len(rss)-1]
		res.anonMedian, res.fileMedian = anon[len(anon)/2], file[len(file)/2]
	}
	if len(ws) > 0 {
		res.wsMedian, res.wsMax = ws[len(ws)/2], ws[len(ws)-1]
	}
	// Let the queues drain so the delivered counts are final.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && (sk.records.Load() < res.linesIn || sk.spans.Load() < res.spansIn) {
		time.Sleep(200 * time.Millisecond)
	}
	res.linesOut, res.spansOut = sk.records.Load(), sk.spans.Load()
	if cg != nil {
		res.oomKills = cg.oomKills()
	}
	return res, nil
}

// sendSpans posts one Reconcile span per reconcile over OTLP/HTTP.
func sendSpans(c *http.Client, base string, recs map[string]reconcile, now time.Time) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "etcd-operator")
	rs.Resource().Attributes().PutStr("service.version", "v1.0.0")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for _, r := range recs {
		sp := ss.AppendEmpty()
		var tid pcommon.TraceID
		var sid pcommon.SpanID
		_, _ = hex.Decode(tid[:], []byte(r.traceID))
		_, _ = hex.Decode(sid[:], []byte(r.spanID))
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("Reconcile")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-20 * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		sp.Attributes().PutStr("reconcile.id", r.id)
		sp.Attributes().PutStr("controller", r.controller)
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return 0, err
	}
	resp, err := c.Post(base+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("sidecar answered %d to a span export", resp.StatusCode)
	}
	return len(recs), nil
}

// waitHTTP polls url until anything answers (any status) or timeout.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startPodLogs serves dir/pods through tools/podlogs and returns the
// sidecar's environment for OPSIGHT_LOG_SOURCE=api.
func startPodLogs(bin, dir string) ([]string, *exec.Cmd, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	sa := filepath.Join(dir, "serviceaccount")
	logf, err := os.Create(filepath.Join(dir, "podlogs.log"))
	if err != nil {
		return nil, nil, err
	}
	srv := exec.Command(bin, "--listen", addr, "--pods-dir", filepath.Join(dir, "pods"), "--sa-dir", sa, "--namespace", "ops")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return nil, nil, err
	}
	logf.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errCA := os.Stat(filepath.Join(sa, "ca.crt"))
		c, errDial := net.Dial("tcp", addr)
		if errCA == nil && errDial == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = srv.Process.Kill()
			return nil, nil, fmt.Errorf("podlogs not ready after 30 s (log %s)", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	host, port, _ := net.SplitHostPort(addr)
	return []string{"OPSIGHT_LOG_SOURCE=api", "KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port,
		"OPSIGHT_SERVICE_ACCOUNT_DIR=" + sa}, srv, nil
}
