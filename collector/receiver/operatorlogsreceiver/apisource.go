package operatorlogsreceiver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/opsight/opsight/internal/conventions"
)

const (
	// A clean end of a follow stream means the container stopped; look for
	// its successor soon.
	apiRestartWait = time.Second
	apiIdleMax     = 8 * time.Second
	apiTornWait    = 100 * time.Millisecond
	// Back-off after a failed request.
	apiRetryInitial = time.Second
	apiRetryMax     = 30 * time.Second
	apiChunkSize    = 64 << 10
	apiChunks       = 4 // read ahead of the parser
	// The kubelet prefixes each line with RFC3339NanoFixed and a space.
	apiTimestampLen = len("2006-01-02T15:04:05.000000000Z")
)

// apiPosition is how far the container's log was shipped, in the only
// coordinates the pods/log API offers: the kubelet's timestamps. Every line
// stamped before TS is shipped; of the lines stamped exactly TS, the first
// Lines are shipped whole, and the next one's first Bytes of content.
// Counting lines with the same timestamp keeps equal stamps exact, Bytes keeps
// a line longer than max_line_size exact when a batch ended inside it.
type apiPosition struct {
	Pod   string `json:"pod"` // namespace/pod/container the position belongs to
	TS    uint64 `json:"ts"`  // Unix nanoseconds
	Lines int    `json:"lines,omitempty"`
	Bytes int    `json:"bytes,omitempty"`
}

// apiSource streams one container's log from the API server:
// GET /api/v1/namespaces/{ns}/pods/{pod}/log?container=&follow=true&timestamps=true&sinceTime=.
// After a broken stream or a restart it asks again from the second of the
// position (sinceTime has seconds precision) and skips what was shipped.
type apiSource struct {
	rc     *operatorLogsReceiver
	cfg    APIConfig
	base   string // endpoint + path of the log resource
	client *http.Client
	res    resource

	pos      apiPosition
	resuming bool // skipping what pos says was shipped
	seenAtTS int  // lines stamped pos.TS seen since resuming started
	// found: in this round a stream held the line at pos (previous or
	// current instance). A round that goes on past pos without finding it
	// lost what the kubelet rotated away meanwhile, if anything; anchored
	// is false when pos is not a line's (start_at: end).
	found, anchored bool

	cur     apiLine
	pending []byte // bytes of the stream not yet handled (no newline yet)

	lastErr string // the last failure logged, to log a repeat only at debug
	shipped int64  // records appended, to tell a round that brought lines
}

// apiLine is the line being read from the stream.
type apiLine struct {
	started  bool   // its timestamp prefix was read
	ts       uint64 // from the prefix
	bad      bool   // no timestamp prefix: shipped raw
	skip     int    // leading content bytes shipped before a restart
	skipAll  bool   // the whole line was shipped before a restart
	dropping bool   // long_lines=truncate: the rest is discarded
	split    bool   // pieces of this line were emitted
	buf      []byte // content not yet emitted, shorter than max_line_size
}

func (rc *operatorLogsReceiver) newAPISource() (*apiSource, error) {
	c := rc.cfg.API
	endpoint := c.Endpoint
	if endpoint == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("api.endpoint: not set and KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are empty (not running in a pod?); set api.endpoint to the API server's URL")
		}
		endpoint = "https://" + net.JoinHostPort(host, port)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("api.ca_file: %w; the pod needs its service-account volume (the webhook's api mode mounts one)", err)
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: the kubelet sends headers with the first
		// log bytes, and a quiet operator may write nothing for hours.
		ForceAttemptHTTP2: true,
		// A silent network partition would leave a follow stream waiting
		// forever: pings find a dead connection.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	a := &apiSource{
		rc: rc, cfg: c, client: &http.Client{Transport: tr},
		base: strings.TrimRight(endpoint, "/") + "/api/v1/namespaces/" + url.PathEscape(c.Namespace) +
			"/pods/" + url.PathEscape(c.Pod) + "/log",
	}
	a.res = resource{attrs: pcommon.NewMap()}
	a.res.attrs.PutStr(conventions.AttrNamespace, c.Namespace)
	a.res.attrs.PutStr(conventions.AttrPod, c.Pod)
	a.res.attrs.PutStr(conventions.AttrContainer, c.Container)
	a.pos.Pod = a.podKey()
	return a, nil
}

func (a *apiSource) podKey() string {
	return a.cfg.Namespace + "/" + a.cfg.Pod + "/" + a.cfg.Container
}

// restore takes the stored position, or for a first start applies start_at.
func (a *apiSource) restore(p *apiPosition, fresh bool) {
	switch {
	case p != nil && p.Pod == a.podKey():
		a.pos, a.anchored = *p, p.TS != 0
	case p != nil:
		a.rc.logger.Warn("operatorlogs: the stored position belongs to another container; reading this one from its beginning",
			zap.String("stored", p.Pod), zap.String("container", a.podKey()))
	case fresh && a.rc.cfg.StartAt == StartAtEnd:
		a.pos.TS = uint64(time.Now().UnixNano())
	}
}

// run streams until shutdown. Each round first drains the previous instance
// of the container (it may have ended while the stream was down or the
// sidecar stopped), then follows the current one until it ends.
func (a *apiSource) run() {
	rc := a.rc
	retry, idle := apiRetryInitial, apiRestartWait
	for rc.ctx.Err() == nil {
		a.found = false
		// 400 when there is no previous instance: nothing to drain.
		_, err := a.stream(true)
		if err != nil && !isStatus(err, http.StatusBadRequest) && rc.ctx.Err() == nil {
			a.report(err)
		}
		shipped, err := a.stream(false)
		if rc.ctx.Err() != nil {
			return
		}
		var pause time.Duration
		if shipped {
			retry, idle = apiRetryInitial, apiRestartWait
		}
		switch {
		case err != nil && shipped:
			// Torn after progress (a proxy's idle cut, an API server
			// rollout): carry on at once, from the position.
			a.report(err)
			pause = apiTornWait
		case err != nil:
			a.report(err)
			pause, retry = retry, min(retry*2, apiRetryMax)
		case shipped:
			pause = idle
		default:
			// The container ended and has not restarted (back-off): each
			// round makes the kubelet read its log again, so ask less often.
			pause, idle = idle, min(idle*2, apiIdleMax)
		}
		select {
		case <-rc.ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// report logs a failure at warn the first time and at debug while it repeats.
func (a *apiSource) report(err error) {
	msg := err.Error()
	if msg == a.lastErr {
		a.rc.logger.Debug("operatorlogs: streaming the container log failed again", zap.Error(err))
		return
	}
	a.lastErr = msg
	a.rc.logger.Warn("operatorlogs: streaming the container log failed; retrying", zap.Error(err))
}

// apiStatusError is a response other than 200, with the API server's message.
type apiStatusError struct {
	code int
	msg  string
}

func (e *apiStatusError) Error() string { return e.msg }

func isStatus(err error, code int) bool {
	var se *apiStatusError
	return errors.As(err, &se) && se.code == code
}

// stream runs one request to its end and reports whether it shipped a
// line. Lines go into the batch; the batch is flushed when full and every
// poll_interval, which commits the position.
func (a *apiSource) stream(previous bool) (bool, error) {
	rc := a.rc
	q := url.Values{"container": {a.cfg.Container}, "timestamps": {"true"}}
	if previous {
		q.Set("previous", "true")
	} else {
		q.Set("follow", "true")
	}
	if a.pos.TS != 0 {
		since := time.Unix(0, int64(a.pos.TS)).UTC().Truncate(time.Second)
		q.Set("sinceTime", since.Format(time.RFC3339))
	}
	ctx, cancel := context.WithCancel(rc.ctx)
	defer cancel() // also ends the body reader below
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	token, err := os.ReadFile(a.cfg.TokenFile)
	if err != nil {
		return false, fmt.Errorf("api.token_file: %w; the pod needs its service-account token (the webhook's api mode mounts one)", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("User-Agent", "opsight-operator-sidecar")
	resp, err := a.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("GET pods/log of %s: %w; check api.endpoint and that the API server is reachable", a.podKey(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, a.statusError(resp)
	}
	if a.lastErr != "" {
		rc.logger.Info("operatorlogs: streaming the container log again", zap.String("container", a.podKey()), zap.Bool("previous", previous))
		a.lastErr = ""
	}

	a.resuming, a.seenAtTS = a.pos.TS != 0, 0
	a.cur, a.pending = apiLine{}, a.pending[:0]
	before := a.shipped
	// Buffers go round between the reader and this loop: feed copies what it
	// keeps, so a chunk's buffer is free again once fed.
	chunks, free := make(chan []byte, apiChunks-1), make(chan []byte, apiChunks)
	for range apiChunks {
		free <- make([]byte, apiChunkSize)
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		for {
			var b []byte
			select {
			case b = <-free:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			n, err := resp.Body.Read(b[:cap(b)])
			if n > 0 {
				select {
				case chunks <- b[:n]:
				case <-ctx.Done():
					readErr <- ctx.Err()
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	tick := time.NewTicker(rc.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case b, ok := <-chunks:
			if !ok {
				err := <-readErr
				if err == io.EOF {
					err = a.finish()
				} else {
					// Torn: what did not become records is asked for again.
					err = fmt.Errorf("reading the log stream of %s: %w", a.podKey(), err)
				}
				if ferr := rc.flush(); ferr != nil {
					return a.shipped > before, ferr
				}
				return a.shipped > before, err
			}
			rc.now = nowTimestamp()
			rc.readBytes += int64(len(b))
			err := a.feed(b)
			free <- b
			if err != nil {
				return a.shipped > before, err
			}
		case <-tick.C:
			if err := rc.flush(); err != nil {
				return a.shipped > before, err
			}
		case <-ctx.Done():
			return a.shipped > before, ctx.Err()
		}
	}
}

// statusError turns a refused request into what is wrong and what to do.
func (a *apiSource) statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	hint := ""
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		hint = "; the token in api.token_file was rejected: the pod needs a valid service-account token"
	case http.StatusForbidden:
		hint = fmt.Sprintf("; grant the pod's service account get on pods/log in namespace %s (chart value sidecar.apiLogAccess)", a.cfg.Namespace)
	case http.StatusNotFound:
		hint = "; check api.namespace and api.pod (POD_NAMESPACE, POD_NAME)"
	}
	return &apiStatusError{code: resp.StatusCode,
		msg: fmt.Sprintf("GET pods/log of %s: %s: %s%s", a.podKey(), resp.Status, msg, hint)}
}

// feed handles bytes of the stream: complete lines, and a line longer than
// max_line_size in pieces once enough of it is there.
func (a *apiSource) feed(b []byte) error {
	rc := a.rc
	if len(a.pending) > 0 {
		a.pending = append(a.pending, b...)
		b = a.pending
	}
	k := bytes.LastIndexByte(b, '\n') + 1
	if k > 0 {
		// One string per chunk: Bodies are substrings of it.
		s := string(b[:k])
		for pos := 0; pos < k; {
			e := strings.IndexByte(s[pos:], '\n')
			if err := a.segment(s[pos:pos+e], true); err != nil {
				return err
			}
			pos += e + 1
		}
	}
	rest := b[k:]
	if len(rest) >= rc.cfg.MaxLineSize+apiTimestampLen+1 {
		if err := a.segment(string(rest), false); err != nil {
			return err
		}
		rest = rest[:0]
	}
	a.pending = append(a.pending[:0], rest...)
	return nil
}

// finish ends the stream cleanly: the instance ended, so a last line
// without newline (or the rest of a long one) is final.
func (a *apiSource) finish() error {
	if len(a.pending) == 0 && !a.cur.started {
		return nil
	}
	err := a.segment(string(a.pending), true)
	a.pending = a.pending[:0]
	return err
}

// segment handles the next bytes of the current line; final ends the line.
func (a *apiSource) segment(s string, final bool) error {
	rc := a.rc
	l := &a.cur
	if !l.started {
		s = a.start(s)
	}
	if l.skipAll {
		if final {
			a.cur = apiLine{buf: l.buf[:0]}
		}
		return nil
	}
	if l.skip > 0 {
		n := min(l.skip, len(s))
		s, l.skip = s[n:], l.skip-n
	}
	max := rc.cfg.MaxLineSize
	if final && !l.split && len(l.buf) == 0 && len(s) <= max {
		a.emit(s, false)
		return a.lineDone()
	}
	if l.dropping {
		a.pos.Bytes += len(s)
	} else {
		l.buf = append(l.buf, s...)
	}
	for !l.dropping && len(l.buf) > max {
		a.emit(string(l.buf[:max]), true)
		a.pos.Bytes += max
		l.split = true
		if rc.cfg.LongLines == LongLinesTrunc {
			l.dropping = true
			a.pos.Bytes += len(l.buf) - max
			l.buf = l.buf[:0]
		} else {
			l.buf = l.buf[:copy(l.buf, l.buf[max:])]
		}
		if rc.batchFull() {
			if err := rc.flush(); err != nil {
				return err
			}
		}
	}
	if !final {
		return nil
	}
	if !l.dropping && (len(l.buf) > 0 || !l.split) {
		a.emit(string(l.buf), l.split)
	}
	return a.lineDone()
}

// start reads the timestamp prefix of a new line and returns the content.
func (a *apiSource) start(s string) string {
	l := &a.cur
	l.started = true
	// The kubelet writes RFC3339NanoFixed; a trimmed fraction parses too.
	if i := strings.IndexByte(s, ' '); i > 0 && i <= apiTimestampLen+6 {
		if ts, ok := parseTimestamp(s[:i]); ok {
			l.ts = ts
			a.begin(l)
			return s[i+1:]
		}
	}
	// No timestamp: ship the line raw, positioned with the last one.
	l.ts, l.bad = a.pos.TS, true
	a.begin(l)
	return s
}

// begin decides, while resuming, whether the line starting now was shipped
// before, and otherwise moves the position to it.
func (a *apiSource) begin(l *apiLine) {
	if a.resuming {
		switch {
		case l.ts < a.pos.TS:
			l.skipAll = true
			return
		case l.ts == a.pos.TS:
			a.found = true
			i := a.seenAtTS
			a.seenAtTS++
			if i < a.pos.Lines {
				l.skipAll = true
				return
			}
			// The line a batch ended inside: its first Bytes were shipped.
			a.resuming = false
			l.skip, l.split = a.pos.Bytes, a.pos.Bytes > 0
			if l.split && a.rc.cfg.LongLines == LongLinesTrunc {
				l.dropping = true
			}
			return
		}
		a.resuming = false
		if a.anchored && !a.found {
			a.rc.logger.Warn("operatorlogs: the log line the checkpoint points at is no longer served by the API: the kubelet rotated the file away (or the container restarted twice) while the stream was down; lines written in between are lost unless they are in the node's rotated files (hostPath mode reads those)",
				zap.String("container", a.podKey()), zap.Time("last_shipped", time.Unix(0, int64(a.pos.TS))),
				zap.Time("next_served", time.Unix(0, int64(l.ts))))
		}
	}
	if l.ts != a.pos.TS {
		a.pos = apiPosition{Pod: a.pos.Pod, TS: l.ts}
	}
}

func (a *apiSource) emit(body string, truncated bool) {
	a.anchored = true
	a.rc.appendRecord(&a.res, body, a.cur.ts, streamUnknown, truncated, a.cur.bad)
	a.shipped++
}

// lineDone closes the current line: it counts as shipped, and a full batch
// is flushed.
func (a *apiSource) lineDone() error {
	buf := a.cur.buf[:0]
	if cap(buf) > 64<<10 {
		buf = nil
	}
	a.cur = apiLine{buf: buf}
	a.pos.Lines++
	a.pos.Bytes = 0
	if a.rc.batchFull() {
		return a.rc.flush()
	}
	return nil
}
