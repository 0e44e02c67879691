package testservers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PodLogs serves the Kubernetes API's pods/log endpoint over a directory of
// kubelet CRI log files. The stream bytes come from the kubelet's own log
// reader (k8s.io/cri-client/pkg/logs.ReadLogs), which is as close to a real
// kube-apiserver + kubelet as a machine without a cluster gets.
var PodLogs = Tool{Name: "podlogs", Module: "tools/podlogs", Pkg: "github.com/opsight/opsight/tools/podlogs"}

// PodLogsServer is a running podlogs process.
type PodLogsServer struct {
	URL        string // https://127.0.0.1:port
	Host, Port string // as KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT
	SADir      string // token, ca.crt, namespace: what a pod has under /var/run/secrets/kubernetes.io/serviceaccount
	PodsDir    string
	logs       string
}

// StartPodLogs starts podlogs on a free loopback port over podsDir (the
// kubelet's layout: <ns>_<pod>_<uid>/<container>/<N>.log) with a service
// account token that may read pods/log in namespace only. It is stopped when
// the test ends.
//
// An instance N counts as running until <container>/<N>.exited exists or an
// N+1.log appears; a follow stream of it ends then. The token is re-read from
// SADir/token on every request, so rewriting that file rotates it.
func StartPodLogs(t testing.TB, podsDir, namespace string) *PodLogsServer {
	t.Helper()
	bin := PodLogs.MustPath(t)
	dir := t.TempDir()
	addr := FreeAddr(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &PodLogsServer{
		URL:     "https://" + addr,
		Host:    host,
		Port:    port,
		SADir:   filepath.Join(dir, "serviceaccount"),
		PodsDir: podsDir,
		logs:    filepath.Join(dir, "podlogs.log"),
	}
	args := []string{"--listen", addr, "--pods-dir", podsDir, "--sa-dir", s.SADir, "--namespace", namespace}
	startProcessReady(t, "podlogs", bin, args, s.logs, func() error { return s.waitReady(30 * time.Second) })
	return s
}

// Logs returns what the server printed so far: one line per request.
func (s *PodLogsServer) Logs() string { return tail(s.logs) }

// waitReady polls until the server has written its CA and answers /healthz
// over TLS verified against it.
func (s *PodLogsServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		last = s.healthz()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s/healthz: not ready after %v (last: %v)", s.URL, timeout, last)
}

func (s *PodLogsServer) healthz() error {
	pem, err := os.ReadFile(filepath.Join(s.SADir, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("ca.crt holds no certificate")
	}
	c := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get(s.URL + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
