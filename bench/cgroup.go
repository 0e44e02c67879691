package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// memCgroup runs the steady sidecar under a memory limit, as a pod's
// resources.limits.memory does, and reads what the kubelet reads: the working
// set (usage minus inactive file pages) and OOM kills. Needs root and the
// memory controller (cgroup v1 or v2).
type memCgroup struct {
	dir string
	v2  bool
}

func newMemCgroup(limit int64) (*memCgroup, error) {
	name := fmt.Sprintf("opsight-bench-%d", os.Getpid())
	c := &memCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	limitFile := "memory.limit_in_bytes"
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(b), "memory") {
		c.dir, c.v2, limitFile = filepath.Join("/sys/fs/cgroup", name), true, "memory.max"
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("-steady-memlimit needs root and the cgroup memory controller: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		c.remove()
		return nil, fmt.Errorf("setting the memory limit: %w", err)
	}
	return c, nil
}

// wrap makes cmd enter the cgroup before it execs, so every page it touches
// is charged there from the start. The binary's pages are first dropped from
// the page cache: pages cached earlier stay charged to whoever read them, and
// a pod that starts from a freshly pulled image pays for its binary itself.
func (c *memCgroup) wrap(cmd *exec.Cmd) error {
	bin := cmd.Path
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
	if err != nil {
		return fmt.Errorf("dropping %s from the page cache: %w", bin, err)
	}
	cmd.Path = "/bin/sh"
	cmd.Args = []string{"/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$0"`, bin, c.dir}
	return nil
}

func (c *memCgroup) stat(key string) int64 {
	f, err := os.Open(filepath.Join(c.dir, "memory.stat"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (c *memCgroup) readInt(file string) int64 {
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// workingSet is cAdvisor's container_memory_working_set_bytes: usage minus
// inactive file pages (those the kernel reclaims first under the limit).
func (c *memCgroup) workingSet() int64 {
	if c.v2 {
		return c.readInt("memory.current") - c.stat("inactive_file")
	}
	return c.readInt("memory.usage_in_bytes") - c.stat("total_inactive_file")
}

// oomKills counts processes the kernel killed for the limit.
func (c *memCgroup) oomKills() int64 {
	file := "memory.oom_control"
	if c.v2 {
		file = "memory.events"
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func (c *memCgroup) remove() { _ = os.Remove(c.dir) }
