package componentcheck

import (
	"reflect"

	"github.com/google/go-cmp/cmp"
)

// ConfigDiff is cmp.Diff over whole config structs, unexported fields
// included (configoptional.Optional and component.ID keep their state
// there), so a field added to a config can never be forgotten by a test.
func ConfigDiff(want, got any) string {
	return cmp.Diff(want, got, cmp.Exporter(func(reflect.Type) bool { return true }))
}
