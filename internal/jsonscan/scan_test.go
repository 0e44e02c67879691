package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValid(t *testing.T) {
	tests := []struct {
		in              string
		strict, lenient Err
	}{
		{`{"msg":"ok"}`, OK, OK},
		{`  {"a":[1,-0.5e+3,true,false,null,{}]}  `, OK, OK},
		{`"x"`, OK, OK},
		{`12`, OK, OK},
		{``, Truncated, Truncated},
		{`  `, Truncated, Truncated},
		{`{"msg":"ok"} trailing`, Syntax, Syntax},
		{`{"msg" "x"}`, Syntax, Syntax},
		{`{"msg":"bad \q escape"}`, Syntax, Syntax},
		{`{"n":01}`, Syntax, Syntax},
		{`{"n":1.}`, Syntax, Syntax},
		{`{"n":-}`, Syntax, Syntax},
		{`{"a":tru}`, Syntax, Syntax},
		{`{"a":"\u12"}`, Syntax, Syntax},
		{`{"a",}`, Syntax, Syntax},
		{`{"a":1,}`, Syntax, Syntax},
		{`{"msg":"cut`, Truncated, Truncated},
		{`{"msg":"ok","n":12`, Truncated, Truncated},
		{`{"a":{"b":[1,2`, Truncated, Truncated},
		{`{"a":tru`, Truncated, Truncated},
		{`{"a":"\u12`, Truncated, Truncated},
		{`{"a":1.`, Truncated, Truncated},
		{`{"a":1e`, Truncated, Truncated},
		{`{"a"`, Truncated, Truncated},
		{"{\"a\":\"tab\there\"}", Syntax, OK}, // raw control byte in a string
		{"{\"a\":\"nul\x00\"}", Syntax, OK},
		{"\"caf\xe9\"", OK, OK}, // UTF-8 is the caller's business, as in json.Valid
		{strings.Repeat("[", 300) + strings.Repeat("]", 300), OK, OK},
		{strings.Repeat("[", 300) + "1,2" + strings.Repeat("]", 300), OK, OK},
		{strings.Repeat("[", 300) + "1 2" + strings.Repeat("]", 300), Syntax, OK}, // lenient: brackets only that deep
		{strings.Repeat("[", 300) + strings.Repeat("]", 299), Truncated, Truncated},
		{strings.Repeat("[", 300) + "}" + strings.Repeat("]", 299), Syntax, Syntax},
		{strings.Repeat("[", 10000) + strings.Repeat("]", 10000), OK, OK},
		{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), Syntax, OK}, // encoding/json's depth limit
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		if got := Strict.Valid(tt.in); got != tt.strict {
			t.Errorf("Strict.Valid(%q) = %d, want %d", name, got, tt.strict)
		}
		if got := Lenient.Valid(tt.in); got != tt.lenient {
			t.Errorf("Lenient.Valid(%q) = %d, want %d", name, got, tt.lenient)
		}
		if ok := json.Valid([]byte(tt.in)); ok != (tt.strict == OK) {
			t.Errorf("json.Valid(%q) = %v: the table's strict column is wrong", name, ok)
		}
	}
}

// members walks the object s with the member functions, as callers do.
func members(sc Scanner, s string) (keys, vals []string, err Err) {
	i := SkipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, nil, Syntax
	}
	i, empty, err := ObjectStart(s, i)
	for more := !empty; err == OK && more; {
		var key string
		var esc bool
		if key, esc, i, err = sc.Key(s, i); err != OK {
			break
		}
		if esc {
			key = Unescape(key)
		}
		start := i
		if i, err = sc.SkipValue(s, i, 1); err != OK {
			break
		}
		keys, vals = append(keys, key), append(vals, s[start:i])
		i, more, err = MemberEnd(s, i)
	}
	return keys, vals, err
}

func TestMembers(t *testing.T) {
	tests := []struct {
		in   string
		keys string // keys and raw values, "k=v|…"
		err  Err
	}{
		{`{}`, "", OK},
		{` { "a" : 1 , "b\u0021":{"c":[1, 2]},"d":"x\"y" } `, `a=1|b!={"c":[1, 2]}|d="x\"y"`, OK},
		{`{"a":1,"b":`, "a=1", Truncated},
		{`{"a":1 "b":2}`, "a=1", Syntax},
		{`{"a":1,"a":2}`, "a=1|a=2", OK}, // duplicates are the caller's business
	}
	for _, tt := range tests {
		keys, vals, err := members(Strict, tt.in)
		var kv []string
		for i := range keys {
			kv = append(kv, keys[i]+"="+vals[i])
		}
		if got := strings.Join(kv, "|"); got != tt.keys || err != tt.err {
			t.Errorf("%q: %q err %d, want %q err %d", tt.in, got, err, tt.keys, tt.err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for _, s := range []string{`a\"b`, `\\n`, `\u00e9\n\t\/`, `\ud83d\ude00 smile`, `\ud83d alone`, `x\u0041`, `\b\f\r`, `\udc00\ud800`, `\ud800\u0041`, ``} {
		var want string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &want); err != nil {
			t.Fatal(err)
		}
		if got := Unescape(s); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", s, got, want)
		}
	}
	// Not decoded by encoding/json: kept as they are.
	for in, want := range map[string]string{"a\xffb\\n": "a\xffb\n", `bad\u12`: `bad\u12`, `end\`: `end\`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := map[string]string{
		"":                   `""`,
		"plain <a&b>":        `"plain <a&b>"`,
		"q\"b\\":             `"q\"b\\"`,
		"\b\f\n\r\t\x00\x1f": `"\b\f\n\r\t\u0000\u001f"`,
		"\u2028\u2029é😀":     `"\u2028\u2029é😀"`,
		"a\xffb\xe2\x82":     `"a\ufffdb\ufffd\ufffd"`,
	}
	for in, want := range tests {
		if got := string(AppendString([]byte("x"), in)); got != "x"+want {
			t.Errorf("AppendString(%q) = %s, want x%s", in, got, want)
		}
		if enc := encodingJSON(in); enc != want {
			t.Errorf("encoding/json writes %q as %s: the table is wrong", in, enc)
		}
	}
}

// encodingJSON is encoding/json's encoding of s with HTML escaping off.
func encodingJSON(s string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// replaceInvalid writes U+FFFD for each byte that is not valid UTF-8, as
// encoding/json's decoder does.
func replaceInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
