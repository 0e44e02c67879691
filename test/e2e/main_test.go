package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain leaves the package out of `go test -short` (make unit): every test
// here starts the real sidecar and real servers and takes minutes. make test
// (CI) and make e2e run it.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: left out under -short; run make e2e")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
