package testservers

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// What the kubelet does for a container, as the tests that run an admitted
// pod's container as a process here need it (test/e2e's injected sidecar,
// test/cluster's pods).

var kubeVarRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// KubeExpand expands $(VAR) as the kubelet does in env values, args and
// subPathExpr: from the variables defined so far; unknown ones stay.
func KubeExpand(s string, env map[string]string) string {
	return kubeVarRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// MountSubPath is where mount m of a volume at src lands: its subPath, or
// its subPathExpr expanded with the container's env, joined to src.
func MountSubPath(src string, m corev1.VolumeMount, env map[string]string) string {
	sub := m.SubPath
	if m.SubPathExpr != "" {
		sub = KubeExpand(m.SubPathExpr, env)
	}
	return filepath.Join(src, sub)
}

// BindMount puts a directory of this machine at a container's mount path.
type BindMount struct {
	Source, Target string
	ReadOnly       bool
}

// MountScript is the sh script that, run in a private mount namespace
// (unshare -m --propagation private), makes each mount: a tmpfs over the
// nearest existing ancestor of each target's parent first (so the mount
// point can be made without touching this machine's directories; never /,
// nor a directory holding the test's temporary files), then the bind mounts.
func MountScript(mounts []BindMount) (string, error) {
	var tmpfs, binds []string
	seen := map[string]bool{}
	for _, m := range mounts {
		p := path.Dir(m.Target)
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			p = path.Dir(p)
		}
		if p == "/" || strings.HasPrefix(os.TempDir(), p) {
			return "", fmt.Errorf("mount %s: a tmpfs over %s would hide this machine's files", m.Target, p)
		}
		if !seen[p] && !under(mounts, p) {
			seen[p] = true
			tmpfs = append(tmpfs, "mount -t tmpfs tmpfs "+ShQuote(p))
		}
		binds = append(binds, fmt.Sprintf("mkdir -p %s && mount --bind %s %s", ShQuote(m.Target), ShQuote(m.Source), ShQuote(m.Target)))
		if m.ReadOnly {
			binds = append(binds, "mount -o remount,bind,ro "+ShQuote(m.Target))
		}
	}
	return strings.Join(append(tmpfs, binds...), "\n"), nil
}

// under: p lies inside one of the mounts (a tmpfs there would hide it).
func under(mounts []BindMount, p string) bool {
	for _, m := range mounts {
		if p == m.Target || strings.HasPrefix(p, m.Target+"/") {
			return true
		}
	}
	return false
}

// ShQuote quotes s for sh.
func ShQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// PodVolume is the volume of pod named name (a volumeMount's), or nil.
func PodVolume(pod *corev1.Pod, name string) *corev1.Volume {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}
