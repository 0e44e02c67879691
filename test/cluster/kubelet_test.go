package cluster

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/opsight/opsight/internal/simoperator"
	"github.com/opsight/opsight/internal/testservers"
)

// container runs one container of a pod the API server admitted as a
// process here, doing what the kubelet would do for it: the environment
// resolved from the pod (values, $(VAR) references, fieldRef), the
// KUBERNETES_SERVICE_* variables, and every volumeMount at its mountPath in
// a private mount namespace (unshare -m): emptyDir and hostPath from
// directories of the test, secret and configMap volumes written from the API
// objects, a projected service-account volume from a TokenRequest bound to
// the pod, as the kubelet requests it. The command is bin with the
// container's args: the image's entrypoint.
//
// One difference from a node: KUBERNETES_SERVICE_HOST is the API server's
// own address rather than the "kubernetes" Service's ClusterIP, which
// kube-proxy would forward there; nothing answers ClusterIPs here.
type container struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	mu       sync.Mutex
	out      bytes.Buffer
	exited   chan struct{}
	bin      string
	args     []string
	script   string
	Env      map[string]string // resolved environment
	HostPath map[string]string // volume name -> directory here (emptyDir, hostPath)
	Mounts   map[string]string // mountPath -> directory here
	// Stdout and Stderr, when set, receive the process's output instead
	// of logs() (e.g. a CRI file, as the container runtime writes it).
	Stdout, Stderr io.Writer
}

// kubeletFor prepares (does not start) container name of pod. hostRoot
// stands for the node's / (hostPath volumes live below it).
func kubeletFor(t *testing.T, cs *kubernetes.Clientset, pod *corev1.Pod, name, bin, hostRoot string) *container {
	t.Helper()
	var spec *corev1.Container
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				spec = &cs[i]
			}
		}
	}
	if spec == nil {
		t.Fatalf("pod %s/%s has no container %s", pod.Namespace, pod.Name, name)
	}
	c := &container{t: t, name: name, bin: bin, Env: map[string]string{}, HostPath: map[string]string{}, Mounts: map[string]string{}}
	c.Env["KUBERNETES_SERVICE_HOST"] = nodeAddr
	c.Env["KUBERNETES_SERVICE_PORT"] = strings.TrimPrefix(plane.URL[strings.LastIndex(plane.URL, ":"):], ":")
	for _, e := range spec.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				t.Fatalf("env %s: only fieldRef values are resolved here", e.Name)
			}
			v = podField(t, pod, e.ValueFrom.FieldRef.FieldPath)
		}
		c.Env[e.Name] = testservers.KubeExpand(v, c.Env)
	}
	for _, a := range append(append([]string{}, spec.Command...), spec.Args...) {
		c.args = append(c.args, testservers.KubeExpand(a, c.Env))
	}
	if len(spec.Command) > 0 {
		c.args = c.args[1:] // the entrypoint is bin
	}

	ctx := context.Background()
	var mounts []testservers.BindMount
	for _, m := range spec.VolumeMounts {
		vol := testservers.PodVolume(pod, m.Name)
		if vol == nil {
			t.Fatalf("mount %s names no volume", m.Name)
		}
		src := t.TempDir()
		switch {
		case vol.HostPath != nil:
			src = filepath.Join(hostRoot, vol.HostPath.Path)
		case vol.EmptyDir != nil:
			if d, ok := c.HostPath[vol.Name]; ok {
				src = d
			}
		case vol.Secret != nil:
			s, err := cs.CoreV1().Secrets(pod.Namespace).Get(ctx, vol.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", vol.Name, err)
			}
			for k, v := range s.Data {
				writeFile(t, filepath.Join(src, k), v)
			}
		case vol.ConfigMap != nil:
			cm, err := cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, vol.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("volume %s: %v", vol.Name, err)
			}
			for k, v := range cm.Data {
				writeFile(t, filepath.Join(src, k), []byte(v))
			}
		case vol.Projected != nil:
			projectVolume(t, cs, pod, vol.Projected, src)
		default:
			t.Fatalf("volume %s: kind not emulated here", vol.Name)
		}
		c.HostPath[vol.Name] = src
		src = testservers.MountSubPath(src, m, c.Env)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		c.Mounts[m.MountPath] = src
		mounts = append(mounts, testservers.BindMount{Source: src, Target: m.MountPath, ReadOnly: m.ReadOnly})
	}
	script, err := testservers.MountScript(mounts)
	if err != nil {
		t.Fatal(err)
	}
	c.script = script
	return c
}

// start runs the container's process (again, after a kill: its volumes
// stay, as a container restart keeps them).
func (c *container) start() {
	c.t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	args := append([]string{"-m", "--propagation", "private", "sh", "-ec", c.script + "\nexec \"$0\" \"$@\"", c.bin}, c.args...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = io.Writer(&lockedWriter{c}), io.Writer(&lockedWriter{c})
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	if c.Stderr != nil {
		cmd.Stderr = c.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", c.name, err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func(ch chan struct{}) { _ = cmd.Wait(); close(ch) }(c.exited)
	c.t.Cleanup(c.kill)
}

// kill is kill -9: no shutdown, no flush.
func (c *container) kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	c.cmd = nil
}

// stop is the kubelet's SIGTERM, then SIGKILL after the grace period.
func (c *container) stop(grace time.Duration) {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(grace):
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.exited
	}
	c.cmd = nil
}

func (c *container) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.out.String()
	if len(s) > 8000 {
		s = "…" + s[len(s)-8000:]
	}
	return s
}

type lockedWriter struct{ c *container }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.out.Write(p)
}

// projectVolume writes a projected volume as the kubelet does; the
// service-account token is requested for the pod, bound to it.
func projectVolume(t *testing.T, cs *kubernetes.Clientset, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, dir string) {
	t.Helper()
	ctx := context.Background()
	for _, src := range p.Sources {
		switch {
		case src.ServiceAccountToken != nil:
			tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				ExpirationSeconds: src.ServiceAccountToken.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}}
			if src.ServiceAccountToken.Audience != "" {
				tr.Spec.Audiences = []string{src.ServiceAccountToken.Audience}
			}
			got, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, tr, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("token for pod %s: %v", pod.Name, err)
			}
			writeFile(t, filepath.Join(dir, src.ServiceAccountToken.Path), []byte(got.Status.Token))
		case src.ConfigMap != nil:
			cm, err := cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("configMap %s: %v", src.ConfigMap.Name, err)
			}
			for _, it := range src.ConfigMap.Items {
				writeFile(t, filepath.Join(dir, it.Path), []byte(cm.Data[it.Key]))
			}
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef != nil {
					writeFile(t, filepath.Join(dir, it.Path), []byte(podField(t, pod, it.FieldRef.FieldPath)))
				}
			}
		}
	}
}

var fieldIndexRE = regexp.MustCompile(`^metadata\.(annotations|labels)\['([^']+)'\]$`)

// podField is the downward API's value of a fieldRef.
func podField(t *testing.T, pod *corev1.Pod, field string) string {
	t.Helper()
	switch field {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	case "status.podIP":
		return pod.Status.PodIP
	case "status.hostIP":
		return pod.Status.HostIP
	}
	if m := fieldIndexRE.FindStringSubmatch(field); m != nil {
		if m[1] == "annotations" {
			return pod.Annotations[m[2]]
		}
		return pod.Labels[m[2]]
	}
	t.Fatalf("fieldRef %s not resolved here", field)
	return ""
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// criStream writes a process's output to a CRI log file as the container
// runtime does: one record per line, tagged with the stream.
type criStream struct {
	w      *simoperator.CRIWriter
	stream string
	mu     sync.Mutex
	buf    []byte
}

func (s *criStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := s.w.WriteLine(time.Now(), s.stream, string(s.buf[:i])); err != nil {
			return 0, err
		}
		s.buf = s.buf[i+1:]
	}
}
