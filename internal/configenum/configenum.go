// Package configenum checks configuration values that take one of a fixed
// set of strings. A component declares a named string type for such a key and
// implements encoding.TextUnmarshaler with Unmarshal, so confmap rejects a bad
// value while loading the YAML, before Validate runs:
//
//	type Format string
//
//	func (f *Format) UnmarshalText(text []byte) error {
//		return configenum.Unmarshal(f, text, FormatAuto, FormatCRI)
//	}
//
// Validate still calls Check, for configurations built in code.
package configenum

import (
	"fmt"
	"slices"
	"strings"
)

// Unmarshal sets *dst to text when it is one of allowed, else returns an error
// that lists them (confmap prefixes it with the key).
func Unmarshal[T ~string](dst *T, text []byte, allowed ...T) error {
	v := T(text)
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("%q is not one of %s", text, List(allowed...))
	}
	*dst = v
	return nil
}

// Check returns an error naming key and the allowed values when v is not one
// of them.
func Check[T ~string](key string, v T, allowed ...T) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %s", key, string(v), List(allowed...))
}

// List joins the allowed values for a message: "auto, cri, docker, json".
func List[T ~string](allowed ...T) string {
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
