// Command profsidecar is the sidecar's collector (the same component list,
// collector.Components) with a CPU profile, for finding where the deployed
// pipeline spends its time (docs/benchmarks.md, "The persistent queue's
// cost").
//
// With --config it runs that file. Without, it runs as the sidecar does in
// env mode: it asks the sidecar binary named by PROFSIDECAR_SIDECAR for its
// configuration (`operator-sidecar env-config`, from the same OPSIGHT_*
// environment), so the bench can run it in the sidecar's place:
//
//	go build -o /tmp/ps ./bench/profsidecar && go build -o /tmp/operator-sidecar ./operator-sidecar
//	PROFSIDECAR_CPUPROFILE=/tmp/prof PROFSIDECAR_SIDECAR=/tmp/operator-sidecar \
//	  go run ./bench -only opsight -lines 200000 -steady 0 -opsight-bin /tmp/ps
//
// PROFSIDECAR_CONFIG=file.yaml replaces env-config by a hand-edited variant
// (${env:OPSIGHT_STATE_DIR}, ${env:OPSIGHT_LOKI_URL}, … read the bench's
// settings). The profile, $PROFSIDECAR_CPUPROFILE-<env|config>-<pid>.pprof,
// is written when the collector stops (SIGTERM). PROFSIDECAR_HEAPPROFILE
// names a heap profile, $PROFSIDECAR_HEAPPROFILE-<env|config>-<pid>.pprof,
// rewritten every 10 s while the collector runs (the steady run's heap):
//
//	PROFSIDECAR_HEAPPROFILE=/tmp/heap PROFSIDECAR_SIDECAR=/tmp/operator-sidecar \
//	  go run ./bench -only opsight -opsight-env=false -lines 20000 -steady 30s -opsight-bin /tmp/ps
//	go tool pprof -sample_index=inuse_space -top /tmp/ps /tmp/heap-env-*.pprof
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/opsight/opsight/collector"
)

func main() {
	mode := "config"
	if !hasConfig(os.Args[1:]) {
		mode = "env"
		cfg, err := envConfig()
		if err != nil {
			fmt.Fprintln(os.Stderr, "profsidecar:", err)
			os.Exit(1)
		}
		os.Args = append(os.Args, "--config", cfg)
		if os.Getenv("PROFSIDECAR_CONFIG") == "" {
			defer os.Remove(cfg) // the temporary copy of env-config
		}
	}
	if p := os.Getenv("PROFSIDECAR_CPUPROFILE"); p != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s-%d.pprof", p, mode, os.Getpid()))
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if p := os.Getenv("PROFSIDECAR_HEAPPROFILE"); p != "" {
		go writeHeapProfiles(fmt.Sprintf("%s-%s-%d.pprof", p, mode, os.Getpid()))
	}
	cmd := otelcol.NewCommand(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "profsidecar", Version: "dev"},
		Factories: collector.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
			DefaultScheme:     "file",
		}},
	})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

func hasConfig(args []string) bool {
	for _, a := range args {
		if a == "--config" || strings.HasPrefix(a, "--config=") {
			return true
		}
	}
	return false
}

// envConfig writes the sidecar's env-mode configuration to a file.
// PROFSIDECAR_CONFIG, when set, names a file used instead (to try a
// variant of the env-mode configuration by hand); it may read the bench's
// settings as ${env:OPSIGHT_STATE_DIR}, ${env:OPSIGHT_LOKI_URL}, ….
func envConfig() (string, error) {
	if p := os.Getenv("PROFSIDECAR_CONFIG"); p != "" {
		return p, nil
	}
	bin := os.Getenv("PROFSIDECAR_SIDECAR")
	if bin == "" {
		return "", fmt.Errorf("no --config and PROFSIDECAR_SIDECAR (the operator-sidecar binary printing env-config) is not set")
	}
	out, err := exec.Command(bin, "env-config").Output()
	if err != nil {
		return "", fmt.Errorf("%s env-config: %w", bin, err)
	}
	return writeTemp(out)
}

// writeHeapProfiles rewrites the heap profile every 10 s, so the file left
// when the bench stops the collector shows the steady state (the profile
// as of the last GC: in-use and allocated bytes by call stack).
func writeHeapProfiles(path string) {
	for range time.Tick(10 * time.Second) {
		f, err := os.Create(path + ".tmp")
		if err != nil {
			fmt.Fprintln(os.Stderr, "profsidecar:", err)
			return
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(path+".tmp", path)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "profsidecar:", err)
			return
		}
	}
}

func writeTemp(out []byte) (string, error) {
	f, err := os.CreateTemp("", "profsidecar-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.Write(out)
	return f.Name(), err
}
