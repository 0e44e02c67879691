package report

import (
	"encoding/xml"
	"fmt"
	"io"

	"github.com/opsight/opsight/internal/conventions"
	"github.com/opsight/opsight/releasegate/gate"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string `xml:"classname,attr"`
	Name      string `xml:"name,attr"`
	// The row's verdict (pass, fail, inconclusive, context) as a property,
	// as pytest's record_property writes them: a context row is neither a
	// failure nor skipped, and must not read as a pass.
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitMessage   `xml:"failure,omitempty"`
	Skipped    *junitMessage   `xml:"skipped,omitempty"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnit writes one testcase per comparison: a failure for fail, skipped
// with the reason for inconclusive, so CI test views show the gate. Every
// testcase carries its verdict as a property (and an inconclusive one
// n_needed, the spans per side that would decide it); context rows say so
// in system-out too.
func JUnit(w io.Writer, r *gate.Report) error {
	s := junitSuite{Name: fmt.Sprintf("releasegate %s -> %s", r.Baseline, r.Candidate),
		Properties: []junitProperty{{"source", r.Source}, {"baseline", r.Baseline}, {"candidate", r.Candidate},
			{"verdict", r.Verdict}, {"alpha", fmt.Sprint(r.Alpha)}}}
	add := func(class, name, verdict, reason, detail string, props ...junitProperty) {
		c := junitCase{Classname: class, Name: name, SystemOut: detail, Properties: append([]junitProperty{{"verdict", verdict}}, props...)}
		switch verdict {
		case gate.VerdictContext:
			c.SystemOut = "context (not gating): " + detail
		case conventions.VerdictFail:
			c.Failure = &junitMessage{Message: reason, Type: "regression", Body: detail}
			c.SystemOut = "" // the failure body says it already
			s.Failures++
		case conventions.VerdictInconclusive:
			c.Skipped = &junitMessage{Message: "inconclusive: " + reason}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, c := range r.Comparisons {
		detail := fmt.Sprintf("baseline %s %s, candidate %s %s, delta %s, n %d/%d: %s", Dur(c.Baseline), spread(c.BaseSpread),
			Dur(c.Candidate), spread(c.CandSpread), delta(c), c.NBaseline, c.NCandidate, c.Reason)
		var props []junitProperty
		if c.Gating && c.Verdict == conventions.VerdictInconclusive {
			// Spans per side that would decide it, or "none" (the reason says why).
			n := "none"
			if c.NNeeded > 0 {
				n = fmt.Sprint(c.NNeeded)
			}
			props = append(props, junitProperty{"n_needed", n})
		}
		add(class(c.Service, c.Operation), c.Operation+" "+gate.QuantileName(c.Quantile), c.Verdict, c.Reason, detail, props...)
	}
	for _, o := range r.Operations {
		if o.ErrorVerdict == conventions.VerdictFail {
			add(class(o.Service, o.Operation), o.Operation+" error share", o.ErrorVerdict, o.ErrorReason, o.ErrorReason)
		}
	}
	for _, x := range r.Warnings {
		s.SystemOut += "warning: " + x + "\n"
	}
	out := junitSuites{Name: "releasegate", Tests: s.Tests, Failures: s.Failures, Skipped: s.Skipped, Suites: []junitSuite{s}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func class(svc, op string) string {
	if svc == "" {
		return "releasegate"
	}
	return "releasegate." + svc
}
