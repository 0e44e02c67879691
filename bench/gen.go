package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// lineGen makes realistic controller-runtime (zap JSON) lines of about 300
// bytes: a reconcile is "Reconciling", "Fetched member status", then
// "Reconcile successful" or (3 %) "Reconciler error"; 40 % of reconciles log
// their trace context in one of the spellings real loggers use; one line in
// 29 is a klog client-side throttling notice.
type lineGen struct {
	rng   *rand.Rand
	n     int
	per   int // lines per reconcile, ≥ 3: Reconciling, per-2 debug lines, the result
	rec   reconcile
	step  int
	buf   []byte
	clock time.Time
}

type reconcile struct {
	id, traceID, spanID string
	controller, object  string
	withTrace           bool
	failed              bool
	sampled             float64 // uniform in [0,1): the reconcile's span is sent when below the sampling share
	spelling            int
}

func newLineGen(seed uint64) *lineGen {
	return &lineGen{rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995)), clock: time.Now().UTC(), per: 3}
}

func (g *lineGen) newReconcile() {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	var tid [16]byte
	binary.BigEndian.PutUint64(tid[:8], a)
	binary.BigEndian.PutUint64(tid[8:], b)
	var sid [8]byte
	binary.BigEndian.PutUint64(sid[:], a^b|1)
	ctl := [...]string{"etcdcluster", "etcdbackup"}[a%2]
	g.rec = reconcile{
		id:      fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(b>>48)&0xfff, b&0xffffffffffff),
		traceID: hex.EncodeToString(tid[:]), spanID: hex.EncodeToString(sid[:]),
		controller: ctl, object: fmt.Sprintf("etcd-%d", a%37),
		withTrace: g.rng.Float64() < 0.4, failed: g.rng.Float64() < 0.03, spelling: int(b % 4), sampled: g.rng.Float64(),
	}
}

// next returns the next operator line (no newline). The slice is reused.
func (g *lineGen) next() []byte {
	g.n++
	g.clock = g.clock.Add(37 * time.Microsecond)
	if g.n%29 == 0 {
		g.buf = fmt.Appendf(g.buf[:0], "I%s       1 request.go:697] Waited for %.3fs due to client-side throttling, not priority and fairness, request: GET:https://10.96.0.1:443/apis/etcd.database.coreos.com/v1beta2/namespaces/ops/etcdclusters/%s",
			g.clock.Format("0102 15:04:05.000000"), float64(g.n%2000)/1000, g.rec.object)
		return g.buf
	}
	if g.step == 0 {
		g.newReconcile()
	}
	r := &g.rec
	level, msg, extra := "info", "Reconciling", ""
	switch last := g.per - 1; {
	case g.step == 0:
	case g.step < last:
		level, msg, extra = "debug", "Fetched member status", `,"members":"`+strconv.Itoa(g.step)+`"`
	default:
		if r.failed {
			level, msg, extra = "error", "Reconciler error", `,"error":"failed to get member status: context deadline exceeded"`
		} else {
			extra = `,"duration":"` + strconv.Itoa(int(g.n%90)+5) + `.2ms"`
			msg = "Reconcile successful"
		}
	}
	g.step = (g.step + 1) % g.per
	b := g.buf[:0]
	b = append(b, `{"level":"`...)
	b = append(b, level...)
	b = append(b, `","ts":"`...)
	b = g.clock.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, `","logger":"controller.`...)
	b = append(b, r.controller...)
	b = append(b, `","msg":"`...)
	b = append(b, msg...)
	b = append(b, `","controller":"`...)
	b = append(b, r.controller...)
	b = append(b, `","controllerGroup":"etcd.database.coreos.com","controllerKind":"EtcdCluster","EtcdCluster":{"name":"`...)
	b = append(b, r.object...)
	b = append(b, `","namespace":"ops"},"reconcileID":"`...)
	b = append(b, r.id...)
	b = append(b, '"')
	if r.withTrace {
		switch r.spelling {
		case 0:
			b = append(b, `,"trace_id":"`+r.traceID+`","span_id":"`+r.spanID+`"`...)
		case 1:
			b = append(b, `,"traceId":"`+r.traceID+`","spanId":"`+r.spanID+`"`...)
		case 2:
			b = append(b, `,"traceID":"`+r.traceID+`","spanID":"`+r.spanID+`"`...)
		default:
			b = append(b, `,"traceparent":"00-`+r.traceID+`-`+r.spanID+`-01"`...)
		}
	}
	b = append(b, extra...)
	b = append(b, '}')
	g.buf = b
	return b
}

// criLine frames an operator line the way containerd writes it.
func criLine(dst []byte, ts time.Time, line []byte) []byte {
	dst = ts.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, " stderr F "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}

// writeInput writes n CRI lines into <root>/<ns>_<pod>_<uid>/manager/0.log
// and returns the file's path and size.
func writeInput(root string, n int) (string, int64, error) {
	dir := filepath.Join(root, "ops_etcd-operator-0_0f0f0f0f-bench", "manager")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, "0.log")
	f, err := os.Create(path)
	if err != nil {
		return "", 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := newLineGen(42)
	var buf []byte
	ts := time.Now().UTC()
	for i := 0; i < n; i++ {
		ts = ts.Add(37 * time.Microsecond)
		buf = criLine(buf[:0], ts, g.next())
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return "", 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return "", 0, err
	}
	return path, st.Size(), f.Close()
}
