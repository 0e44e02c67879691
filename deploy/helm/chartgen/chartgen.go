// Package chartgen keeps the generated parts of the opsight chart in step
// with their sources: the chart-local copies of the dashboards, the Grafana
// data sources and the alert rules (Helm's .Files only reads inside the
// chart), and the values table of the chart README (from the "# --" comments
// of values.yaml). `go run ./deploy/helm/gen` writes them; the chart test
// fails when they drift.
package chartgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ChartDir is the chart, relative to the repository root.
const ChartDir = "deploy/helm/opsight"

// copySet is one family of copied files: every file matching Glob (relative to
// the repository root) that Keep accepts goes to Dest (relative to the chart).
type copySet struct {
	Glob string
	Dest string
	Keep func(name string) bool
}

// lokiRuleFile tells Loki ruler files from Prometheus ones in alerts/rules/:
// the alerts generator names them loki-*.yaml.
func lokiRuleFile(name string) bool { return strings.HasPrefix(name, "loki-") }

var copySets = []copySet{
	{Glob: "dashboards/json/*.json", Dest: "files/dashboards"},
	{Glob: "deploy/grafana/datasources.yaml", Dest: "files/grafana"},
	{Glob: "alerts/rules/*.yaml", Dest: "files/alerts", Keep: func(n string) bool { return !lokiRuleFile(n) }},
	{Glob: "alerts/rules/*.yaml", Dest: "files/loki-rules", Keep: lokiRuleFile},
}

// Drift is one generated file that differs from what its source says.
type Drift struct {
	Path   string // relative to the repository root
	Reason string
	want   []byte // nil: the file should not exist
}

// Check returns every generated file under root that is out of date.
func Check(root string) ([]Drift, error) {
	var drift []Drift
	for _, cs := range copySets {
		srcs, err := filepath.Glob(filepath.Join(root, cs.Glob))
		if err != nil {
			return nil, err
		}
		want := map[string][]byte{}
		for _, src := range srcs {
			name := filepath.Base(src)
			if cs.Keep != nil && !cs.Keep(name) {
				continue
			}
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, err
			}
			want[name] = b
		}
		destDir := filepath.Join(root, ChartDir, cs.Dest)
		for name, b := range want {
			rel := filepath.Join(ChartDir, cs.Dest, name)
			got, err := os.ReadFile(filepath.Join(destDir, name))
			switch {
			case os.IsNotExist(err):
				drift = append(drift, Drift{rel, "missing copy of " + filepath.Join(filepath.Dir(cs.Glob), name), b})
			case err != nil:
				return nil, err
			case !bytes.Equal(got, b):
				drift = append(drift, Drift{rel, "differs from " + filepath.Join(filepath.Dir(cs.Glob), name), b})
			}
		}
		// Copies whose source is gone (README.md explains the directory and stays).
		entries, err := os.ReadDir(destDir)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() || e.Name() == "README.md" {
				continue
			}
			if _, ok := want[e.Name()]; !ok {
				drift = append(drift, Drift{filepath.Join(ChartDir, cs.Dest, e.Name()), "has no source any more", nil})
			}
		}
	}

	readmePath := filepath.Join(ChartDir, "README.md")
	values, err := os.ReadFile(filepath.Join(root, ChartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	readme, err := os.ReadFile(filepath.Join(root, readmePath))
	if err != nil {
		return nil, err
	}
	rows, err := ValuesDoc(values)
	if err != nil {
		return nil, err
	}
	newReadme, err := ReplaceValuesTable(readme, rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", readmePath, err)
	}
	if !bytes.Equal(newReadme, readme) {
		drift = append(drift, Drift{readmePath, "values table differs from values.yaml", newReadme})
	}
	sort.Slice(drift, func(i, j int) bool { return drift[i].Path < drift[j].Path })
	return drift, nil
}

// Write brings every drifted file up to date.
func Write(root string, drift []Drift) error {
	for _, d := range drift {
		p := filepath.Join(root, d.Path)
		if d.want == nil {
			if err := os.Remove(p); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, d.want, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Row is one documented value.
type Row struct {
	Key, Type, Default, Description string
}

// ValuesDoc lists every value of a values.yaml with its "# --" description.
// A mapping key with a description and no described children is one value
// (e.g. resources); every other leaf must have a description.
func ValuesDoc(values []byte) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, fmt.Errorf("values.yaml: %w", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("values.yaml: top level must be a mapping")
	}
	var rows []Row
	var missing []string
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			desc := description(k.HeadComment)
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 && (desc == "" || hasDescribedChild(v)) {
				walk(key+".", v)
				continue
			}
			if desc == "" {
				missing = append(missing, fmt.Sprintf("%s (line %d)", key, k.Line))
				continue
			}
			rows = append(rows, Row{Key: key, Type: typeOf(v), Default: defaultOf(v), Description: desc})
		}
	}
	walk("", doc.Content[0])
	if len(missing) > 0 {
		return nil, fmt.Errorf("values.yaml: add a \"# -- description\" comment above: %s", strings.Join(missing, ", "))
	}
	return rows, nil
}

func hasDescribedChild(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if description(m.Content[i].HeadComment) != "" {
			return true
		}
	}
	return false
}

// description is the text of the last "# --" block of a head comment.
func description(comment string) string {
	lines := strings.Split(comment, "\n")
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "# --") {
			start = i
		}
	}
	if start < 0 {
		return ""
	}
	var parts []string
	for i, l := range lines[start:] {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
		if i == 0 {
			l = strings.TrimSpace(strings.TrimPrefix(l, "--"))
		}
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

func typeOf(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "object"
	case yaml.SequenceNode:
		return "list"
	}
	switch v.Tag {
	case "!!bool":
		return "bool"
	case "!!int":
		return "int"
	case "!!float":
		return "float"
	}
	return "string"
}

func defaultOf(v *yaml.Node) string {
	var x any
	if err := v.Decode(&x); err != nil {
		return "?"
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "?"
	}
	return string(b)
}

// Markers around the generated table in the chart README.
const (
	BeginMarker = "<!-- values:begin (generated from values.yaml by go run ./deploy/helm/gen; do not edit) -->"
	EndMarker   = "<!-- values:end -->"
)

// ReplaceValuesTable puts the table for rows between the README's markers.
func ReplaceValuesTable(readme []byte, rows []Row) ([]byte, error) {
	s := string(readme)
	b := strings.Index(s, BeginMarker)
	e := strings.Index(s, EndMarker)
	if b < 0 || e < b {
		return nil, fmt.Errorf("missing the markers %q ... %q", BeginMarker, EndMarker)
	}
	var t strings.Builder
	t.WriteString(BeginMarker + "\n")
	t.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, r := range rows {
		fmt.Fprintf(&t, "| `%s` | %s | `%s` | %s |\n", r.Key, r.Type, cell(r.Default), cell(r.Description))
	}
	return []byte(s[:b] + t.String() + s[e:]), nil
}
