// Command image builds, pushes and versions opsight's operator-sidecar
// container image without a Docker daemon: the Go toolchain compiles a
// static binary per platform and go-containerregistry assembles an OCI image
// index from it, byte for byte the same for the same inputs.
//
//	cd tools/image
//	go run . build [--version 0.1.0] [--revision SHA] [--out ../../dist/oci]
//	go run . push  --to ghcr.io/opsight/operator-sidecar:0.1.0 [--tag latest] [--username U --password-stdin]
//	go run . bump  --version 0.2.0 [--chart-version 0.2.0]
//
// Why go-containerregistry and not ko: ko builds the same kind of image (and
// uses this library underneath), but it hides the layer contents and the
// config behind its own conventions (/ko-app, KO_DATA_PATH, a base image to
// pull). Here every file of the image is listed in base.go, the build needs
// no network beyond the Go module proxy, and the test pushes the result to an
// in-process registry with the same library. See docs/release.md.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `image builds, pushes and versions the operator-sidecar image (no Docker daemon).

Usage:
  image build [flags]   compile per platform, write an OCI image layout and CycloneDX SBOMs
  image push  [flags]   push the layout's image index, and the SBOMs as OCI referrers
  image bump  [flags]   set the release version in VERSION and deploy/helm/opsight/Chart.yaml

Run "image <command> -h" for the flags of a command.
Exit codes: 0 done, 1 failed, 2 bad usage.
`

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "build":
		return runBuild(args[1:], stdout, stderr)
	case "push":
		return runPush(args[1:], stdin, stdout, stderr)
	case "bump":
		return runBump(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "image: unknown command %q: expected build, push or bump\n\n%s", args[0], usage)
	return 2
}
