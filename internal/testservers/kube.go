package testservers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// The control plane of the cluster tests (test/cluster), built from pinned
// tool modules: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler of one Kubernetes release, and kwok for a node whose pods
// run without containers.
var (
	Etcd                  = Tool{Name: "etcd", Module: "tools/etcd", Pkg: "go.etcd.io/etcd/server/v3"}
	KubeAPIServer         = Tool{Name: "kube-apiserver", Module: "tools/kube", Pkg: "k8s.io/kubernetes/cmd/kube-apiserver", LDFlags: kubeVersionLDFlags}
	KubeControllerManager = Tool{Name: "kube-controller-manager", Module: "tools/kube", Pkg: "k8s.io/kubernetes/cmd/kube-controller-manager", LDFlags: kubeVersionLDFlags}
	KubeScheduler         = Tool{Name: "kube-scheduler", Module: "tools/kube", Pkg: "k8s.io/kubernetes/cmd/kube-scheduler", LDFlags: kubeVersionLDFlags}
	Kwok                  = Tool{Name: "kwok", Module: "tools/kwok", Pkg: "sigs.k8s.io/kwok/cmd/kwok"}
)

// kubeVersionLDFlags stamps the release the tool module pins: built outside
// Kubernetes' own scripts the binaries report v0.0.0-master, and Helm (and
// the chart's version checks) read the version the API server reports.
func kubeVersionLDFlags(dir string) (string, error) {
	v, err := ModuleVersion(dir, "k8s.io/kubernetes")
	if err != nil {
		return "", err
	}
	var major, minor string
	if parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3); len(parts) == 3 {
		major, minor = parts[0], parts[1]
	}
	const pkg = "k8s.io/component-base/version."
	return strings.Join([]string{
		"-X " + pkg + "gitVersion=" + v,
		"-X " + pkg + "gitMajor=" + major,
		"-X " + pkg + "gitMinor=" + minor,
		"-X " + pkg + "gitTreeState=clean",
	}, " "), nil
}

// ModuleVersion is the version of module mod that the go.mod in dir selects.
func ModuleVersion(dir, mod string) (string, error) {
	return moduleField(dir, mod, "{{.Version}}")
}

// ModuleDir is the module cache directory of module mod (downloaded if
// needed): as the go.mod in dir selects it, or at the version mod names
// (mod@version). Non-Go files (CRDs, stage definitions) are read from there.
func ModuleDir(dir, mod string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = dir
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s in %s: %v %s", mod, dir, err, m.Error)
	}
	return m.Dir, nil
}

func moduleField(dir, mod, format string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", format, mod)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go list -m %s in %s: %v\n%s", mod, dir, err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// ControlPlaneOptions place the control plane. It must run inside a network
// namespace of its own (unshare -n): its components listen on fixed ports,
// and Service ClusterIPs must be unroutable there, so nothing that aims at
// one can reach an address outside.
type ControlPlaneOptions struct {
	Dir string // certificates, kubeconfig, etcd data, logs
	// Addr is the API server's advertise address and the fake node's IP:
	// an address on the namespace's loopback other than 127.0.0.0/8, which
	// the API server refuses to advertise.
	Addr string
	// PodCIDR is the range kwok gives pod IPs from; put it on the loopback
	// too, so a process of the test listening on 0.0.0.0 answers for any pod
	// (a webhook Service resolved through EndpointSlices reaches it).
	PodCIDR string
}

// ControlPlane is a running etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, with one fake node.
type ControlPlane struct {
	URL        string // https://Addr:6443
	Kubeconfig string // cluster-admin (system:masters) client certificate
	CAFile     string
	NodeName   string
	Dir        string
	KwokDir    string // the kwok module's files (CRDs, stages)
	Version    string // the release the binaries report, e.g. v1.37.2
	procs      []*exec.Cmd
	client     *http.Client // cluster-admin, made once the certificates exist
	logs       []*os.File
}

const (
	apiServerPort   = 6443
	kwokKubeletPort = 10250
	// ServiceCIDR is the Service ClusterIP range; nothing answers there.
	ServiceCIDR = "10.96.0.0/16"
)

// StartControlPlane builds (on first use) and starts the control plane;
// Stop ends it. Startup takes seconds: the API server is ready in ~4 s on 2
// cores once built; building takes ~10 CPU-minutes cold.
func StartControlPlane(opts ControlPlaneOptions) (cp *ControlPlane, err error) {
	bins := map[string]string{}
	for _, tl := range []Tool{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Kwok} {
		p, err := tl.Path()
		if err != nil {
			return nil, err
		}
		bins[tl.Name] = p
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{Dir: opts.Dir, NodeName: "kwok-node-0", URL: fmt.Sprintf("https://%s:%d", opts.Addr, apiServerPort)}
	defer func() {
		if err != nil {
			cp.Stop()
			cp = nil
		}
	}()
	if cp.KwokDir, err = ModuleDir(filepath.Join(root, Kwok.Module), "sigs.k8s.io/kwok"); err != nil {
		return cp, err
	}
	if cp.Version, err = ModuleVersion(filepath.Join(root, KubeAPIServer.Module), "k8s.io/kubernetes"); err != nil {
		return cp, err
	}
	pki, err := newKubePKI(opts.Dir)
	if err != nil {
		return cp, err
	}
	cp.CAFile = pki.path("ca.crt")
	ip := net.ParseIP(opts.Addr)
	svcIP := net.ParseIP("10.96.0.1") // the first address of ServiceCIDR: Service "kubernetes"
	if err := pki.issue("apiserver", "kube-apiserver", nil, []net.IP{ip, svcIP, net.IPv4(127, 0, 0, 1)},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}); err != nil {
		return cp, err
	}
	if err := pki.issue("admin", "opsight-test-admin", []string{"system:masters"}, nil, nil); err != nil {
		return cp, err
	}
	if err := pki.serviceAccountKey(); err != nil {
		return cp, err
	}
	cp.Kubeconfig = filepath.Join(opts.Dir, "admin.kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, []byte(cp.kubeconfig(pki.path("admin.crt"), pki.path("admin.key"))), 0o600); err != nil {
		return cp, err
	}
	if cp.client, err = cp.adminClient(); err != nil {
		return cp, err
	}

	etcdURL := "http://127.0.0.1:2379"
	if err := cp.start(bins["etcd"], "etcd",
		"--name=default", "--data-dir="+filepath.Join(opts.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=default=http://127.0.0.1:2380",
		"--listen-metrics-urls=http://127.0.0.1:2381",
		"--unsafe-no-fsync", // a throwaway store: durability is not under test
		"--log-level=warn"); err != nil {
		return cp, err
	}
	if err := WaitHTTP(etcdURL+"/health", 60*time.Second); err != nil {
		return cp, cp.withLogs(fmt.Errorf("etcd not ready: %v", err))
	}

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--advertise-address=" + opts.Addr,
		fmt.Sprintf("--secure-port=%d", apiServerPort),
		"--tls-cert-file=" + pki.path("apiserver.crt"), "--tls-private-key-file=" + pki.path("apiserver.key"),
		"--client-ca-file=" + pki.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.path("sa.pub"),
		"--service-account-signing-key-file=" + pki.path("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		// Webhook Services resolve through their EndpointSlices to pod IPs
		// (on this namespace's loopback), not to an unroutable ClusterIP.
		"--enable-aggregator-routing=true",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate=" + pki.path("admin.crt"), "--kubelet-client-key=" + pki.path("admin.key"),
		"--allow-privileged=true",
		"--profiling=false",
	}
	if err := cp.start(bins["kube-apiserver"], "kube-apiserver", args...); err != nil {
		return cp, err
	}
	if err := cp.waitReady(90 * time.Second); err != nil {
		return cp, cp.withLogs(err)
	}
	if err := cp.start(bins["kube-controller-manager"], "kube-controller-manager",
		"--kubeconfig="+cp.Kubeconfig,
		"--authentication-kubeconfig="+cp.Kubeconfig, "--authorization-kubeconfig="+cp.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--service-account-private-key-file="+pki.path("sa.key"),
		"--root-ca-file="+pki.path("ca.crt"),
		"--service-cluster-ip-range="+ServiceCIDR,
		"--use-service-account-credentials=false"); err != nil {
		return cp, err
	}
	if err := cp.start(bins["kube-scheduler"], "kube-scheduler",
		"--kubeconfig="+cp.Kubeconfig,
		"--authentication-kubeconfig="+cp.Kubeconfig, "--authorization-kubeconfig="+cp.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1"); err != nil {
		return cp, err
	}
	kwokCfg, err := cp.kwokConfig()
	if err != nil {
		return cp, err
	}
	if err := cp.ApplyCRDs(filepath.Join(cp.KwokDir, "kustomize/crd/bases/kwok.x-k8s.io_logs.yaml")); err != nil {
		return cp, err
	}
	if err := cp.start(bins["kwok"], "kwok",
		"--kubeconfig="+cp.Kubeconfig, "--config="+kwokCfg,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip="+opts.Addr, fmt.Sprintf("--node-port=%d", kwokKubeletPort),
		fmt.Sprintf("--server-address=%s:%d", opts.Addr, kwokKubeletPort),
		"--cidr="+opts.PodCIDR); err != nil {
		return cp, err
	}
	node := fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q,
		"annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
		"labels":{"kubernetes.io/hostname":%q,"kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","type":"kwok"}}}`, cp.NodeName, cp.NodeName)
	if _, err := cp.Do("POST", "/api/v1/nodes", []byte(node)); err != nil {
		return cp, err
	}
	if err := cp.waitNodeReady(60 * time.Second); err != nil {
		return cp, cp.withLogs(err)
	}
	return cp, nil
}

// kwokConfig writes kwok's configuration: the options a hand-written file
// must set (zero parallelism plays no stage at all), the Logs CRD enabled so
// tests point a pod's log at a CRI file, and kwok's own general stages.
func (cp *ControlPlane) kwokConfig() (string, error) {
	var b strings.Builder
	b.WriteString(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  enableCRDs: [Logs]
  enableDebuggingHandlers: true
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 2
`)
	for _, f := range []string{
		"node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml",
		"pod/general/pod-create.yaml", "pod/general/pod-init-container-running.yaml",
		"pod/general/pod-init-container-completed.yaml", "pod/general/pod-ready.yaml",
		"pod/general/pod-complete.yaml", "pod/general/pod-delete.yaml",
	} {
		raw, err := os.ReadFile(filepath.Join(cp.KwokDir, "kustomize/stage", f))
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	p := filepath.Join(cp.Dir, "kwok.yaml")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

func (cp *ControlPlane) kubeconfig(crt, key string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
`, cp.URL, cp.CAFile, crt, key)
}

func (cp *ControlPlane) start(bin, name string, args ...string) error {
	logf, err := os.Create(filepath.Join(cp.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %v", name, err)
	}
	cp.procs = append(cp.procs, cmd)
	cp.logs = append(cp.logs, logf)
	return nil
}

// Stop kills every component, newest first.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		_ = cp.procs[i].Process.Kill()
		_, _ = cp.procs[i].Process.Wait()
		cp.logs[i].Close()
	}
	cp.procs, cp.logs = nil, nil
}

// withLogs adds the tail of every component's log to err.
func (cp *ControlPlane) withLogs(err error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for _, f := range cp.logs {
		raw, _ := os.ReadFile(f.Name())
		if len(raw) > 3000 {
			raw = raw[len(raw)-3000:]
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", filepath.Base(f.Name()), raw)
	}
	return errors.New(b.String())
}

// adminClient authenticates as cluster-admin; StartControlPlane makes one,
// so requests (polls among them) reuse its connections.
func (cp *ControlPlane) adminClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(cp.Dir, "admin.crt"), filepath.Join(cp.Dir, "admin.key"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(cp.CAFile)
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

// Do sends one JSON request as cluster-admin and returns the body of a 2xx
// answer.
func (cp *ControlPlane) Do(method, path string, body []byte) ([]byte, error) {
	return cp.do(method, path, "application/json", body)
}

func (cp *ControlPlane) do(method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, cp.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := cp.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		return out.Bytes(), fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, out.String())
	}
	return out.Bytes(), nil
}

// ApplyCRDs creates or updates the CustomResourceDefinitions of a YAML file
// (server-side apply, as kubectl apply --server-side) and waits until each
// is established.
func (cp *ControlPlane) ApplyCRDs(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
		var crd struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := json.Unmarshal(j, &crd); err != nil || crd.Kind == "" {
			continue // an empty document
		}
		if crd.Kind != "CustomResourceDefinition" {
			return fmt.Errorf("%s: a %s; only CustomResourceDefinitions are applied here", file, crd.Kind)
		}
		path := "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + crd.Metadata.Name
		if _, err := cp.do("PATCH", path+"?fieldManager=opsight-test&force=true", "application/apply-patch+yaml", j); err != nil {
			return err
		}
		if err := cp.waitCondition(path, "Established", 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func (cp *ControlPlane) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		body, err := cp.Do("GET", "/readyz", nil)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %v: %v", timeout, last)
}

func (cp *ControlPlane) waitNodeReady(timeout time.Duration) error {
	err := cp.waitCondition("/api/v1/nodes/"+cp.NodeName, "Ready", timeout)
	if err != nil {
		return fmt.Errorf("%v (kwok plays no stage?)", err)
	}
	return nil
}

// waitCondition waits until the object at path has condition typ True.
func (cp *ControlPlane) waitCondition(path, typ string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		body, err := cp.Do("GET", path, nil)
		if err == nil {
			var o struct {
				Status struct {
					Conditions []struct{ Type, Status string }
				}
			}
			if json.Unmarshal(body, &o) == nil {
				for _, c := range o.Status.Conditions {
					if c.Type == typ && c.Status == "True" {
						return nil
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: condition %s not True after %v", path, typ, timeout)
}

// Kubectl is the client of the same release, for documentation examples
// run verbatim.
var Kubectl = Tool{Name: "kubectl", Module: "tools/kube", Pkg: "k8s.io/kubernetes/cmd/kubectl", LDFlags: kubeVersionLDFlags}
