package componentcheck

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
)

// signalStability is what a factory says about one signal.
type signalStability struct {
	signal string
	level  component.StabilityLevel
}

// classOf returns the factory's class and the stability of every signal it
// could support (StabilityLevelUndefined: not supported).
func classOf(f component.Factory) (string, []signalStability, error) {
	switch f := f.(type) {
	case receiver.Factory:
		return "receiver", []signalStability{{"traces", f.TracesStability()}, {"metrics", f.MetricsStability()}, {"logs", f.LogsStability()}}, nil
	case processor.Factory:
		return "processor", []signalStability{{"traces", f.TracesStability()}, {"metrics", f.MetricsStability()}, {"logs", f.LogsStability()}}, nil
	case exporter.Factory:
		return "exporter", []signalStability{{"traces", f.TracesStability()}, {"metrics", f.MetricsStability()}, {"logs", f.LogsStability()}}, nil
	case extension.Factory:
		return "extension", []signalStability{{"extension", f.Stability()}}, nil
	}
	return "", nil, fmt.Errorf("factory %s is %T: not a receiver, processor, exporter or extension factory", f.Type(), f)
}

// levelName is the metadata.yaml spelling of a stability level ("" for
// undefined: the signal is not supported).
func levelName(l component.StabilityLevel) string {
	if l == component.StabilityLevelUndefined {
		return ""
	}
	return strings.ToLower(l.String())
}

// CheckFactory returns every disagreement between metadata.yaml and the
// factory: type, class, and the stability of each signal (a signal the
// factory creates must be listed at the factory's level, and a listed signal
// must be one the factory creates).
func CheckFactory(m Metadata, f component.Factory) error {
	var errs []error
	if got := f.Type().String(); got != m.Type {
		errs = append(errs, fmt.Errorf("type: metadata.yaml says %q, the factory %q", m.Type, got))
	}
	class, sigs, err := classOf(f)
	if err != nil {
		return err
	}
	if class != m.Status.Class {
		errs = append(errs, fmt.Errorf("status.class: metadata.yaml says %q, the factory is a %s factory", m.Status.Class, class))
	}
	for _, s := range sigs {
		want, got := levelName(s.level), m.StabilityOf(s.signal)
		switch {
		case want == got:
		case want == "":
			errs = append(errs, fmt.Errorf("status.stability: lists %s (%s), which the factory does not create", s.signal, got))
		case got == "":
			errs = append(errs, fmt.Errorf("status.stability: the factory creates %s at %s; metadata.yaml does not list it", s.signal, want))
		default:
			errs = append(errs, fmt.Errorf("status.stability: %s is %s in metadata.yaml, %s in the factory", s.signal, got, want))
		}
	}
	return errors.Join(errs...)
}

// Signals returns the signals the factory creates, in traces, metrics, logs
// order ("extension" for an extension).
func Signals(f component.Factory) []string {
	_, sigs, _ := classOf(f)
	var out []string
	for _, s := range sigs {
		if s.level != component.StabilityLevelUndefined {
			out = append(out, s.signal)
		}
	}
	return out
}

// CheckReadme compares the status table at the top of a README with
// metadata.yaml: its Stability and Type rows, e.g.
//
//	| Stability | alpha: logs, traces |
//	| Type      | `operatorenrich`    |
func CheckReadme(m Metadata, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rows := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 40; n++ {
		cells := strings.Split(strings.TrimSpace(sc.Text()), "|")
		if len(cells) == 4 && cells[0] == "" && cells[3] == "" {
			key := strings.TrimSpace(cells[1])
			if _, dup := rows[key]; !dup {
				rows[key] = strings.TrimSpace(cells[2])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var errs []error
	for _, r := range []struct{ key, want string }{
		{"Stability", m.StabilityCell()},
		{"Type", "`" + m.Type + "`"},
	} {
		got, ok := rows[r.key]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: the status table has no %s row; add | %s | %s |", path, r.key, r.key, r.want))
		case got != r.want:
			errs = append(errs, fmt.Errorf("%s: status table %s is %q; metadata.yaml says %q", path, r.key, got, r.want))
		}
	}
	return errors.Join(errs...)
}
