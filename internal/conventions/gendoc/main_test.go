package main

import (
	"bytes"
	"os"
	"testing"
)

const committed = "../../../docs/conventions.md"

// TestCommittedDocIsCurrent fails when docs/conventions.md differs from what
// the generator writes: run `go generate ./internal/conventions`.
func TestCommittedDocIsCurrent(t *testing.T) {
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v (run go generate ./internal/conventions)", err)
	}
	want := render()
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("docs/conventions.md is stale (run go generate ./internal/conventions); first difference at line %d:\ncommitted: %s\ngenerated: %s", i+1, g, w)
			}
		}
	}
}
