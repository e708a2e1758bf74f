package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Position is where something is written: a file and a 1-based line (0 when unknown).
type Position struct {
	File string
	Line int
}

// String is "file:line", or "file" when the line is unknown.
func (p Position) String() string {
	if p.Line <= 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Error is one problem in a file: what was wrong and where.
type Error struct {
	// Pos is the line of the offending key or value.
	Pos Position
	// Kind and Name ("namespace/name") name the resource, when they are known.
	Kind, Name string
	// Field is the JSON path of the offending field, such as spec.ports[0].protocol,
	// when there is one.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error reads like "mesh.yaml:12: Workload default/echo-v1: spec.ports[0].prot: unknown field".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	if what := strings.TrimSpace(e.Kind + " " + e.Name); what != "" {
		b.WriteString(": ")
		b.WriteString(what)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one or more files. Its Error is one problem a line.
type ErrorList []*Error

// Error joins the problems, one a line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err is l as an error, or nil when l is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// sort orders the problems by file and line, keeping the order they were found in
// within a line.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
}
