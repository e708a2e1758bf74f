package analyze

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
)

// Severity says whether a finding stops the configuration (an error) or only part
// of it is not in force (a warning).
type Severity string

// The severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Finding is one problem in the mesh files.
type Finding struct {
	Severity Severity
	// Err is the problem: position, resource, field and message. Some model errors
	// have no position (Pos is zero).
	Err *config.Error
}

// String reads like "mesh.yaml:12: warning: VirtualService default/r: spec.tls: not supported: ...".
func (f Finding) String() string {
	text := f.Err.Error()
	if pos := f.Err.Pos.String(); pos != "" && strings.HasPrefix(text, pos+": ") {
		return pos + ": " + string(f.Severity) + ": " + strings.TrimPrefix(text, pos+": ")
	}
	return string(f.Severity) + ": " + strings.TrimPrefix(text, ": ")
}

// Result is everything found in a set of mesh files.
type Result struct {
	Findings []Finding
}

// Errors counts the findings of severity error.
func (r *Result) Errors() int { return r.count(SeverityError) }

// Warnings counts the findings of severity warning.
func (r *Result) Warnings() int { return r.count(SeverityWarning) }

func (r *Result) count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Files parses the files, builds the model from them (with no sidecar registered)
// and returns every problem: invalid documents and objects defined twice (errors;
// a file with one is rejected whole), traffic rules that cannot be applied
// (errors), and fields Trellis does not implement (warnings), each at the line of
// its field.
func Files(paths []string) (*Result, error) {
	res := &Result{}
	var sets []*config.Set
	for _, p := range paths {
		set, err := config.ParseFile(p)
		var list config.ErrorList
		switch {
		case errors.As(err, &list):
			res.add(SeverityError, list...)
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", p, err)
		default:
			sets = append(sets, set)
		}
	}
	set, dups := config.Combine(sets...)
	res.add(SeverityError, dups...)
	res.addSet(set, &Locator{ReadFile: os.ReadFile})
	res.sort()
	return res, nil
}

// sort orders the findings by file and line, keeping the order they were found in
// within a line; findings without a position come first.
func (r *Result) sort() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Err.Pos.File, b.Err.Pos.File), cmp.Compare(a.Err.Pos.Line, b.Err.Pos.Line))
	})
}

// addSet adds the problems that building the model from set finds.
func (r *Result) addSet(set *config.Set, loc *Locator) {
	mesh := model.Build(set, nil)
	for _, e := range mesh.Errors {
		r.add(SeverityError, &config.Error{Msg: e})
	}
	r.add(SeverityError, loc.Locate(mesh.ConfigErrors)...)
	r.add(SeverityWarning, loc.Locate(mesh.Unsupported)...)
	r.add(SeverityWarning, loc.Locate(mesh.Warnings)...)
}

func (r *Result) add(s Severity, errs ...*config.Error) {
	for _, e := range errs {
		r.Findings = append(r.Findings, Finding{Severity: s, Err: e})
	}
}

// Write prints one finding a line, then a summary.
func (r *Result) Write(w io.Writer) error {
	for _, f := range r.Findings {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%s, %s\n", plural(r.Errors(), "error"), plural(r.Warnings(), "warning"))
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Sets reports on objects decoded elsewhere (the custom resources of a cluster):
// invalid objects (errs, errors), objects defined twice (errors), traffic rules
// that cannot be applied (errors) and unsupported fields (warnings). Their positions
// name the objects; there are no files to re-read for field lines.
func Sets(sets []*config.Set, errs config.ErrorList) *Result {
	res := &Result{}
	res.add(SeverityError, errs...)
	set, dups := config.Combine(sets...)
	res.add(SeverityError, dups...)
	res.addSet(set, &Locator{ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }})
	res.sort()
	return res
}
