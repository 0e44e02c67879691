// Package dashboards builds opsight's Grafana dashboards from Go (Grafana
// Foundation SDK) so the queries use the shared names in internal/conventions
// and cannot drift from the sidecar, the alert rules and the release gate.
//
// The JSON under json/ is generated output: edit the Go code, then run
// `go generate ./dashboards`. A test fails when the committed files differ.
package dashboards

//go:generate go run ./cmd/gen -out json
