package model

import (
	"cmp"
	"fmt"
	"slices"

	"trellis.dev/trellis/internal/config"
)

// newError is a problem with a field of a document.
func newError(obj config.ObjectRef, field, format string, args ...any) *config.Error {
	return &config.Error{
		Pos:   obj.Pos,
		Kind:  obj.Kind,
		Name:  obj.Namespace + "/" + obj.Name,
		Field: field,
		Msg:   fmt.Sprintf(format, args...),
	}
}

// sortErrors orders problems by document, keeping the order they were found in
// within one document.
func sortErrors(l []*config.Error) {
	slices.SortStableFunc(l, func(a, b *config.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
}
