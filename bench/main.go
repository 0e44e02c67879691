// Command bench measures the operator-sidecar against an upstream
// OpenTelemetry Collector contrib build (tools/contrib) on the same machine,
// the same generated CRI input and the same counting sink, one after the
// other:
//
//	go run ./bench                      # 1M lines: opsight, opsight-env, contrib, contrib-norisk; steady run
//	go run ./bench -lines 200000 -count 3 -steady 0
//
// Figures: lines/s and MiB/s from the first to the last record the sink
// received, CPU seconds per million lines (utime+stime of the child from
// /proc at the moment the last record arrived), peak RSS (VmHWM), bytes the
// collector wrote per input byte (wchar: pushes plus any queue writes), and
// the ratios opsight/contrib; then opsight's RSS at a steady 10k lines/s plus
// 1k spans/s in its production (env) configuration. docs/benchmarks.md has
// the method and the figures measured.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

type options struct {
	lines       int
	count       int
	steady      time.Duration
	steadyLines int
	steadySpans int
	timeout     time.Duration
	opsightBin  string
	contribBin  string
	keep        bool
	only        string
	noRisk      bool
	envMode     bool
	traced      float64
	memLimitMiB int
	source      string // steady run's log source: file or api
	podlogsBin  string
}

func main() {
	var o options
	flag.IntVar(&o.lines, "lines", 1_000_000, "CRI lines in the throughput input")
	flag.IntVar(&o.count, "count", 1, "throughput runs per collector (the table shows the median and the spread)")
	flag.DurationVar(&o.steady, "steady", 30*time.Second, "length of opsight's steady-state run (0 skips it)")
	flag.IntVar(&o.steadyLines, "steady-lines", 10_000, "log lines per second in the steady-state run")
	flag.IntVar(&o.steadySpans, "steady-spans", 1_000, "spans per second in the steady-state run")
	flag.StringVar(&o.source, "steady-source", "file", "log source of the steady run: file (hostPath) or api (pods/log served by tools/podlogs, the kubelet's own reader)")
	flag.IntVar(&o.memLimitMiB, "steady-memlimit", 0, "run the steady sidecar in a memory cgroup with this limit in MiB and GOMEMLIMIT at 90% of it, as the chart does (needs root); 0: no limit")
	flag.Float64Var(&o.traced, "steady-traced", 1, "share of reconciles whose span is sent in the steady-state run (sampling)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on one throughput run after this long")
	flag.StringVar(&o.opsightBin, "opsight-bin", "", "operator-sidecar binary (default: build ./operator-sidecar)")
	flag.StringVar(&o.contribBin, "contrib-bin", "", "contrib collector binary (default: build tools/contrib)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (input, configs, collector logs)")
	flag.StringVar(&o.only, "only", "", "run only one collector: opsight or contrib")
	flag.BoolVar(&o.noRisk, "contrib-norisk", true, "also run contrib without the risk-pattern statements")
	flag.BoolVar(&o.envMode, "opsight-env", true, "also run opsight as deployed (env mode) on the backlog")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "opsight-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	runOpsight, runContrib := o.only != "contrib", o.only != "opsight"
	if o.opsightBin == "" && runOpsight {
		o.opsightBin = filepath.Join(work, "operator-sidecar")
		fmt.Fprintln(os.Stderr, "building ./operator-sidecar …")
		if err := build(root, o.opsightBin, "./operator-sidecar"); err != nil {
			return err
		}
	}
	if o.source == "api" && o.steady > 0 && runOpsight {
		o.podlogsBin = filepath.Join(work, "podlogs")
		fmt.Fprintln(os.Stderr, "building tools/podlogs …")
		if err := build(filepath.Join(root, "tools", "podlogs"), o.podlogsBin, "."); err != nil {
			return err
		}
	} else if o.source != "file" && o.source != "api" {
		return fmt.Errorf("-steady-source %q: want file or api", o.source)
	}
	if o.contribBin == "" && runContrib {
		o.contribBin = filepath.Join(work, "otelcol-contrib-bench")
		fmt.Fprintln(os.Stderr, "building tools/contrib …")
		if err := build(filepath.Join(root, "tools", "contrib"), o.contribBin, "."); err != nil {
			return err
		}
	}
	sk, err := newSink()
	if err != nil {
		return err
	}
	defer sk.srv.Close()

	podRoot := filepath.Join(work, "pods")
	fmt.Fprintf(os.Stderr, "writing %d CRI lines …\n", o.lines)
	input, size, err := writeInput(podRoot, o.lines)
	if err != nil {
		return err
	}
	glob := filepath.Join(podRoot, "*", "*", "*.log")
	fmt.Printf("input: %d CRI lines, %.1f MiB (%.0f B/line) in %s\n", o.lines, mib(size), float64(size)/float64(o.lines), filepath.Base(input))
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())

	// contrib does the same work as opsight (risk patterns as 26 OTTL
	// regular expressions); contrib-norisk leaves the risk patterns out, to
	// show what the rest of the pipeline costs.
	// opsight-env is the sidecar as deployed (no --config: file_storage
	// persistent queue, memory_limiter, otlp receiver, span metrics) on the
	// same backlog.
	variants := []variant{
		{name: "opsight", bin: o.opsightBin, config: opsightConfig(glob, sk.URL()), on: runOpsight},
		{name: "opsight-env", bin: o.opsightBin, env: envMode(glob, sk.URL()), on: runOpsight && o.envMode},
		{name: "contrib", bin: o.contribBin, config: contribConfig(glob, sk.URL(), true), on: runContrib},
		{name: "contrib-norisk", bin: o.contribBin, config: contribConfig(glob, sk.URL(), false), on: runContrib && o.noRisk},
	}
	for i := 0; i < o.count; i++ {
		for j := range variants {
			v := &variants[j]
			if !v.on {
				continue
			}
			r, err := runThroughput(o, *v, sk, size, work, i)
			if err != nil {
				return err
			}
			v.results = append(v.results, r)
		}
	}
	printTable(variants)
	goals := throughputGoals(variants)

	if o.steady > 0 && runOpsight {
		s, err := runSteady(o, o.opsightBin, sk, work)
		if err != nil {
			return err
		}
		fmt.Printf("\nsteady %d lines/s + %d spans/s (%.0f%% of reconciles traced) for %v (opsight, env mode: %s, span metrics; log source %s):\n",
			o.steadyLines, o.steadySpans, 100*o.traced, o.steady, envQueues(), o.source)
		fmt.Printf("  RSS median %.1f MiB (anon %.1f, file %.1f), max %.1f MiB (second half), VmHWM %.1f MiB, CPU %.2f cores; delivered %d/%d lines, %d/%d spans\n",
			mib(s.rssMedian), mib(s.anonMedian), mib(s.fileMedian), mib(s.rssMax), mib(s.peak), s.cores, s.linesOut, s.linesIn, s.spansOut, s.spansIn)
		if o.source == "api" {
			fmt.Printf("  pods/log server (tools/podlogs: the kubelet's log reader, TLS, HTTP/2): CPU %.2f cores\n", s.serverCores)
		}
		if o.memLimitMiB > 0 {
			fmt.Printf("  under a %d MiB memory limit (GOMEMLIMIT %d MiB): working set median %.1f MiB, max %.1f MiB; OOM kills %d\n",
				o.memLimitMiB, o.memLimitMiB*9/10, mib(s.wsMedian), mib(s.wsMax), s.oomKills)
		}
		goals = append(goals, steadyGoals(o, s)...)
	}
	printGoals(goals)
	return nil
}

// result is one throughput run.
type result struct {
	lines     int64
	bytes     int64
	window    time.Duration // first to last record at the sink
	wall      time.Duration // process start to last record
	cpu       time.Duration
	peak      int64
	written   int64 // bytes the collector wrote (disk and network), -1 unknown
	badInSink int64
}

func (r result) linesPerSec() float64 { return float64(r.lines) / r.window.Seconds() }
func (r result) mibPerSec() float64   { return mib(r.bytes) / r.window.Seconds() }
func (r result) cpuPerM() float64     { return r.cpu.Seconds() / (float64(r.lines) / 1e6) }

// writtenPerInput is what the collector wrote per input byte: the push
// requests (compressed) plus, with a persistent queue, everything bbolt
// writes (the queue's write amplification).
func (r result) writtenPerInput() float64 {
	if r.written < 0 {
		return math.NaN()
	}
	return float64(r.written) / float64(r.bytes)
}

func runThroughput(o options, v variant, sk *sink, size int64, work string, run int) (result, error) {
	name := v.name
	dir := filepath.Join(work, fmt.Sprintf("%s-%d", name, run))
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return result{}, err
	}
	args := []string{}
	env := os.Environ()
	if v.env != nil {
		for _, e := range v.env {
			env = append(env, strings.ReplaceAll(e, "$DIR", dir))
		}
	} else {
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(v.config, "$DIR", dir)), 0o644); err != nil {
			return result{}, err
		}
		args = append(args, "--config", cfg)
	}
	fmt.Fprintf(os.Stderr, "run %d: %s …\n", run+1, name)
	sk.reset(int64(o.lines))
	logf, err := os.Create(filepath.Join(dir, "collector.log"))
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	cmd := exec.Command(v.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = env
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer stop(cmd, exited)

	select {
	case <-sk.doneCh():
	case <-exited:
		return result{}, fmt.Errorf("%s exited early (%v) after %d of %d records; log: %s", name, waitErr, sk.records.Load(), o.lines, logf.Name())
	case <-time.After(o.timeout):
		return result{}, fmt.Errorf("%s: %d of %d records after %v; log: %s", name, sk.records.Load(), o.lines, o.timeout, logf.Name())
	}
	ps, err := readProc(cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	first, last := sk.window()
	// A moment more shows duplicates, if any were still on their way.
	time.Sleep(500 * time.Millisecond)
	if got := sk.records.Load(); got != int64(o.lines) {
		fmt.Fprintf(os.Stderr, "  note: %s delivered %d records for %d lines\n", name, got, o.lines)
	}
	return result{lines: int64(o.lines), bytes: size, window: last.Sub(first), wall: last.Sub(start), cpu: ps.cpu, peak: ps.peakRSS, written: ps.written, badInSink: sk.bad.Load()}, nil
}

// stop ends a child: SIGTERM, then SIGKILL after 10 s.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// variant is one collector configuration measured.
type variant struct {
	name, bin, config string
	env               []string // env mode when set: no --config
	on                bool
	results           []result
}

// envQueues says how the env-mode sidecar queues: OPSIGHT_QUEUE_BYTES in
// the bench's environment (passed on) puts the Loki queue on disk too.
func envQueues() string {
	if os.Getenv("OPSIGHT_QUEUE_BYTES") != "" {
		return "persistent queues for logs and spans (OPSIGHT_QUEUE_BYTES set)"
	}
	return "logs read through, spans in a persistent queue"
}

// envMode is the sidecar's environment for the opsight-env variant; $DIR is
// the run's directory.
func envMode(glob, sink string) []string {
	free := func() string { a, _ := freeAddr(); return a }
	return []string{
		"OPSIGHT_LOG_INCLUDE=" + glob, "OPSIGHT_STATE_DIR=$DIR/state", "OPSIGHT_REVISION=v1.0.0",
		"OPSIGHT_LOKI_URL=" + sink + "/loki/api/v1/push", "OPSIGHT_METRICS_ADDR=" + free(),
		"OPSIGHT_OTLP_HTTP_ADDR=" + free(), "OPSIGHT_OTLP_GRPC_ADDR=" + free(),
		"POD_NAMESPACE=ops", "POD_NAME=etcd-operator-0", "CONTAINER_NAME=manager",
	}
}

func printTable(variants []variant) {
	var ops []result
	var others []variant
	for _, v := range variants {
		if !v.on {
			continue
		}
		if v.name == "opsight" {
			ops = v.results
		} else {
			others = append(others, v)
		}
	}
	// Columns: opsight, then each other variant with the ratio opsight/it.
	type row struct {
		name   string
		f      func(result) float64
		format string
	}
	rows := []row{
		{"throughput lines/s", result.linesPerSec, "%.0f"},
		{"throughput MiB/s", result.mibPerSec, "%.1f"},
		{"cpu-s per 1M lines", result.cpuPerM, "%.2f"},
		{"peak RSS MiB (VmHWM)", func(r result) float64 { return mib(r.peak) }, "%.1f"},
		{"written B per input B", result.writtenPerInput, "%.2f"},
		{"wall s (start to last)", func(r result) float64 { return r.wall.Seconds() }, "%.2f"},
	}
	cell := func(rs []result, f func(result) float64, format string) (string, float64) {
		if len(rs) == 0 {
			return "-", math.NaN()
		}
		med, spread := medianSpread(rs, f)
		s := fmt.Sprintf(format, med)
		if len(rs) > 1 {
			s += fmt.Sprintf(" ±%2.0f%%", spread)
		}
		return s, med
	}
	head := fmt.Sprintf("%-24s %14s", "", "opsight")
	for _, v := range others {
		head += fmt.Sprintf(" %14s %14s", v.name, "ratio")
	}
	fmt.Println(head)
	for _, r := range rows {
		a, am := cell(ops, r.f, r.format)
		line := fmt.Sprintf("%-24s %14s", r.name, a)
		for _, v := range others {
			b, bm := cell(v.results, r.f, r.format)
			ratio := "-"
			if !math.IsNaN(am) && !math.IsNaN(bm) && bm != 0 {
				ratio = fmt.Sprintf("%.2fx", am/bm)
			}
			line += fmt.Sprintf(" %14s %14s", b, ratio)
		}
		fmt.Println(line)
	}
	runs := len(ops)
	for _, v := range variants {
		runs = max(runs, len(v.results))
		for _, r := range v.results {
			if r.badInSink > 0 {
				fmt.Printf("warning: %s: the sink could not decode %d requests\n", v.name, r.badInSink)
			}
		}
	}
	fmt.Printf("(%d run(s) each, run one after the other; ± is the half-range over runs as %% of the median)\n", runs)
}

func medianSpread(rs []result, f func(result) float64) (float64, float64) {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if med == 0 {
		return med, 0
	}
	return med, 100 * (v[len(v)-1] - v[0]) / 2 / med
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// build builds pkg as releases are built (make build, the image): static,
// without the symbol table and DWARF, so file-backed RSS is what users get.
func build(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "timetzdata", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
	return nil
}

// repoRoot walks up from the working directory to the root go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/opsight/opsight\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the opsight repository (no go.mod of github.com/opsight/opsight above the working directory)")
		}
		dir = parent
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
