package jsonscan

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzAgainstEncodingJSON is the differential test of the whole package
// against encoding/json, on any input used three ways:
//
//   - as a document: Strict makes encoding/json's accept/reject decision
//     (json.Valid) and reports Truncated exactly when encoding/json's error
//     is at the end of the input (see cutShort); Lenient accepts all Strict accepts and
//     more only for raw control bytes in strings or nesting beyond 256.
//     For an object, the members (unescaped keys, raw values) are the ones
//     encoding/json finds (last duplicate wins in its map).
//   - as the content of a string literal: ScanString accepts what
//     encoding/json accepts, and Unescape gives encoding/json's string once
//     invalid UTF-8 bytes (which Unescape keeps) are replaced as it does.
//   - as a string to write: AppendString writes encoding/json's bytes
//     (SetEscapeHTML(false)), and reading them back gives the input (valid
//     UTF-8) or its replaced form.
func FuzzAgainstEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"level":"info","ts":1700000000.5,"msg":"x \"q\" \u00e9","reconcileID":"r"}`,
		`{"Foo":{"name":"a","namespace":"b"},"a":[1,{"b":null}],"c":"\ud83d\ude00\ud800"}`,
		`{"msg":"cut`, `not json`, ``, `[1,2`, `-0.5e+3`, `{"a":tru`, `"\u12`,
		"{\"a\":\"tab\there\"}", "\"caf\xe9\"", "a\u2028b\x00<&>\b\f",
		strings.Repeat("[", 300) + "1 2" + strings.Repeat("]", 300),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The document.
		strictErr, lenientErr := Strict.Valid(s), Lenient.Valid(s)
		jsonErr := json.Unmarshal([]byte(s), new(json.RawMessage))
		if (strictErr == OK) != json.Valid([]byte(s)) {
			t.Fatalf("%q: Strict says %d, json.Valid %v", s, strictErr, json.Valid([]byte(s)))
		}
		if (strictErr == Truncated) != cutShort(s, jsonErr) {
			t.Fatalf("%q: Strict says %d, encoding/json %v", s, strictErr, jsonErr)
		}
		if strictErr == OK && lenientErr != OK {
			t.Fatalf("%q: Strict accepts, Lenient says %d", s, lenientErr)
		}
		if lenientErr == OK && strictErr != OK && !hasControl(s) && strings.Count(s, "[")+strings.Count(s, "{") <= lenientDepth {
			t.Fatalf("%q: Lenient accepts with no control byte or deep nesting, Strict says %d", s, strictErr)
		}
		if strictErr == OK && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") {
			keys, vals, err := members(Strict, s)
			if err != OK {
				t.Fatalf("%q: valid object, members say %d", s, err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			ours := make(map[string]string, len(keys))
			for i, k := range keys {
				ours[replaceInvalid(k)] = vals[i]
			}
			if len(ours) != len(m) {
				t.Fatalf("%q: %d distinct keys, encoding/json %d", s, len(ours), len(m))
			}
			for k, v := range m {
				if ours[k] != string(v) {
					t.Fatalf("%q: key %q = %q, encoding/json %q", s, k, ours[k], v)
				}
			}
		}

		// The content of a string literal.
		lit := `"` + s + `"`
		raw, end, _, err := Strict.ScanString(lit, 0)
		var want string
		jsonErr = json.Unmarshal([]byte(lit), &want)
		if (err == OK && end == len(lit)) != (jsonErr == nil) {
			t.Fatalf("%s: ScanString %d end %d/%d, encoding/json %v", lit, err, end, len(lit), jsonErr)
		}
		if jsonErr == nil {
			if raw != s {
				t.Fatalf("%s: raw %q", lit, raw)
			}
			if got := Unescape(raw); replaceInvalid(got) != want {
				t.Fatalf("%s: Unescape %q, encoding/json %q", lit, got, want)
			}
		}

		// The string to write.
		out := AppendString(nil, s)
		if enc := encodingJSON(s); string(out) != enc {
			t.Fatalf("%q: AppendString %s, encoding/json %s", s, out, enc)
		}
		back, end, _, err := Strict.ScanString(string(out), 0)
		if err != OK || end != len(out) || Unescape(back) != replaceInvalid(s) {
			t.Fatalf("%q: %s does not read back (%d)", s, out, err)
		}
	})
}

// cutShort: encoding/json's error says the input ended inside a value. It
// says "unexpected end of JSON input", except inside a literal, a number or
// a \u escape: there it reports the space it feeds itself at the end as an
// invalid character at offset len(s). Telling those apart from a real
// syntax error is one thing this package adds.
func cutShort(s string, err error) bool {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return false
	}
	if se.Error() == "unexpected end of JSON input" {
		return true
	}
	return se.Offset == int64(len(s)) && strings.HasPrefix(se.Error(), "invalid character ' '") && !strings.HasSuffix(s, " ")
}

// hasControl: a raw byte below 0x20 other than JSON whitespace, or JSON
// whitespace that may sit inside a string.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}
