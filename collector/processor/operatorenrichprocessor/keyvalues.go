package operatorenrichprocessor

import (
	"strings"

	"github.com/opsight/opsight/internal/jsonscan"
)

// scanKeyValues reads key=value pairs of a text line: klog's structured
// text ("msg" controller="foo" reconcileID="…") after its header, or a
// logfmt line (level=info msg=… reconcileID=…). Keys route like top-level
// JSON members; quoted values may carry backslash escapes.
func scanKeyValues(s string, sc *scanner) {
	i := 0
	if k := strings.Index(s, "] "); k >= 0 && k < 64 {
		i = k + 2 // after klog's header
	}
	if i < len(s) && s[i] == '"' { // klog's quoted message
		_, j, _, err := jsonscan.Lenient.ScanString(s, i)
		if err != jsonscan.OK {
			return
		}
		i = j
	}
	for i < len(s) {
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return
		}
		eq += i
		ks := strings.LastIndexByte(s[i:eq], ' ') + i + 1
		key := s[ks:eq]
		j := eq + 1
		var val string
		esc := false
		if j < len(s) && s[j] == '"' {
			v, end, e, err := jsonscan.Lenient.ScanString(s, j)
			if err != jsonscan.OK {
				return
			}
			val, esc, j = v, e, end
		} else {
			end := strings.IndexByte(s[j:], ' ')
			if end < 0 {
				end = len(s) - j
			}
			val, j = s[j:j+end], j+end
		}
		if key != "" && strings.IndexByte(key, '"') < 0 && val != "" {
			sc.set(0, "", key, val, esc, kindString)
		}
		i = j
	}
}

// looksLikeLogfmt: the first token is key=value.
func looksLikeLogfmt(s string) bool {
	sp := strings.IndexByte(s, ' ')
	if sp < 0 {
		sp = len(s)
	}
	eq := strings.IndexByte(s[:sp], '=')
	return eq > 0
}
