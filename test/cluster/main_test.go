// Package cluster tests opsight on a real Kubernetes control plane: the
// chart installed by Helm, injection through the API server's real admission
// chain (built-in plugins, Pod Security, CEL matchConditions, RBAC), the
// sidecar reading pods/log through the API server, and a real
// controller-runtime operator.
//
// Everything runs inside a network namespace the test creates (unshare -n):
// the API server advertises 192.0.2.10 (TEST-NET-1) on that namespace's
// loopback, pod IPs come from 198.51.100.0/24 (TEST-NET-2), also on the
// loopback, so a webhook Service resolves through its EndpointSlice to the
// webhook process this test runs; Service ClusterIPs (10.96.0.0/16) are
// unroutable there, so nothing aimed at one can leave. Programs are built
// before entering the namespace, which has no network.
package cluster

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opsight/opsight/internal/testservers"
)

const (
	nodeAddr = "192.0.2.10"
	podCIDR  = "198.51.100.0/24"
	// inNamespace marks the re-executed test binary inside its namespace.
	inNamespace = "OPSIGHT_CLUSTER_TEST_NETNS"
	binDirEnv   = "OPSIGHT_CLUSTER_TEST_BIN"
)

var (
	plane *testservers.ControlPlane
	// Programs built before entering the namespace.
	bins struct {
		sidecar, helm, operator, operatorSlow, releasegate string
	}
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("cluster: left out under -short; make test runs it (make cluster alone)")
		os.Exit(0)
	}
	if os.Getenv(inNamespace) == "" {
		os.Exit(outside())
	}
	os.Exit(inside(m))
}

// outside builds every program, then runs this test binary again in a new
// network namespace.
func outside() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "cluster: creating a network namespace needs root, as CI and the dev machines have")
		return 1
	}
	start := time.Now()
	binDir, err := os.MkdirTemp("", "opsight-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := build(binDir); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: %v\n", err)
		return 1
	}
	fmt.Printf("cluster: programs built in %s\n", time.Since(start).Round(time.Second))
	cmd := exec.Command("unshare", append([]string{"--net", "--", os.Args[0]}, os.Args[1:]...)...)
	// No proxy can help inside; a go command that would download fails at once.
	cmd.Env = append(os.Environ(), inNamespace+"=1", binDirEnv+"="+binDir, "GOPROXY=off")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "cluster: unshare: %v\n", err)
		return 1
	}
	return 0
}

func build(binDir string) error {
	root, err := testservers.RepoRoot()
	if err != nil {
		return err
	}
	for _, tl := range []testservers.Tool{testservers.Etcd, testservers.KubeAPIServer, testservers.KubeControllerManager,
		testservers.KubeScheduler, testservers.Kubectl, testservers.Kwok, testservers.Helm} {
		if _, err := tl.Path(); err != nil {
			return err
		}
	}
	// The module files the plane reads (CRDs, kwok's stages) into the cache.
	if _, err := testservers.ModuleDir(filepath.Join(root, testservers.Kwok.Module), "sigs.k8s.io/kwok"); err != nil {
		return err
	}
	for _, crd := range crdSources {
		if _, err := crd.dir(); err != nil {
			return err
		}
	}
	steps := []struct {
		dir, out, pkg string
		ldflags       string
	}{
		{root, "operator-sidecar", "./operator-sidecar", ""},
		{root, "releasegate", "./releasegate", ""},
		{filepath.Join(root, "instrument"), "widget-operator", exampleOperatorPkg, ""},
		{filepath.Join(root, "instrument"), "widget-operator-slow", exampleOperatorPkg, "-X main.extraDelay=" + slowBuildDelay},
	}
	for _, s := range steps {
		args := []string{"build", "-o", filepath.Join(binDir, s.out)}
		if s.ldflags != "" {
			args = append(args, "-ldflags", s.ldflags)
		}
		cmd := exec.Command("go", append(args, s.pkg)...)
		cmd.Dir = s.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", s.pkg, err, out)
		}
	}
	return nil
}

// inside starts the control plane in this namespace and runs the tests.
func inside(m *testing.M) int {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", nodeAddr + "/32", "dev", "lo"},
		{"addr", "add", podCIDR, "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: ip %v: %v\n%s", args, err, out)
			return 1
		}
	}
	binDir := os.Getenv(binDirEnv)
	bins.sidecar = filepath.Join(binDir, "operator-sidecar")
	bins.operator = filepath.Join(binDir, "widget-operator")
	bins.operatorSlow = filepath.Join(binDir, "widget-operator-slow")
	bins.releasegate = filepath.Join(binDir, "releasegate")
	var err error
	if bins.helm, err = testservers.Helm.Path(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "opsight-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	plane, err = testservers.StartControlPlane(testservers.ControlPlaneOptions{
		Dir: dir, Addr: nodeAddr, PodCIDR: podCIDR,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster: control plane: %v\n", err)
		return 1
	}
	defer plane.Stop()
	fmt.Printf("cluster: control plane %s ready in %s (API server %s, node %s)\n", plane.Version, time.Since(start).Round(100*time.Millisecond), plane.URL, plane.NodeName)
	return m.Run()
}
