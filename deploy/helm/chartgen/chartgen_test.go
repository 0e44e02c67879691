package chartgen

import (
	"strings"
	"testing"
)

func TestDescription(t *testing.T) {
	for _, tc := range []struct{ comment, want string }{
		{"# -- one line", "one line"},
		{"# plain comment\n# -- the value\n#   continues here", "the value continues here"},
		{"# not a description", ""},
		{"", ""},
	} {
		if got := description(tc.comment); got != tc.want {
			t.Errorf("description(%q) = %q, want %q", tc.comment, got, tc.want)
		}
	}
}

func TestReplaceValuesTable(t *testing.T) {
	in := []byte("# T\n" + BeginMarker + "\nold\n" + EndMarker + "\ntail\n")
	out, err := ReplaceValuesTable(in, []Row{{Key: "a.b", Type: "string", Default: `"x|y"`, Description: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "# T\n" + BeginMarker + "\n| Key | Type | Default | Description |\n|---|---|---|---|\n| `a.b` | string | `\"x\\|y\"` | d |\n" + EndMarker + "\ntail\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if _, err := ReplaceValuesTable([]byte("no markers"), nil); err == nil || !strings.Contains(err.Error(), "markers") {
		t.Errorf("missing markers not reported: %v", err)
	}
}

func FuzzValuesDoc(f *testing.F) {
	f.Add([]byte("# -- a\na: 1\nb:\n  # -- c\n  c: [1]\n"))
	f.Add([]byte("x: {y: 1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := ValuesDoc(b)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Key == "" || r.Description == "" {
				t.Fatalf("row without key or description: %+v", r)
			}
		}
		if _, err := ReplaceValuesTable([]byte(BeginMarker+EndMarker), rows); err != nil {
			t.Fatal(err)
		}
	})
}
