package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

var htmlUnescaper = strings.NewReplacer(`\u0026`, "&", `\u003c`, "<", `\u003e`, ">")

// File is one generated dashboard.
type File struct {
	Name string // file name under json/
	UID  string
	JSON []byte // indented, newline-terminated
}

// builders lists every dashboard, in output order.
func builders() []*dashboardBuilder {
	return []*dashboardBuilder{goldenSignals(), releaseComparison(), sidecarHealth()}
}

// All builds every dashboard. The output is deterministic so the committed
// JSON can be compared byte for byte.
func All() ([]File, error) {
	var out []File
	for _, b := range builders() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("building dashboard: %w", err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // keep PromQL's <, > and & readable
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encoding dashboard %s: %w", *d.Uid, err)
		}
		// SDK types with their own MarshalJSON escape HTML regardless; undo it
		// so queries stay readable (<, > and & are valid inside JSON strings).
		js := htmlUnescaper.Replace(buf.String())
		out = append(out, File{Name: *d.Uid + ".json", UID: *d.Uid, JSON: []byte(js)})
	}
	return out, nil
}
