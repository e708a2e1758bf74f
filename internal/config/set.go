package config

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// Workload is a decoded, defaulted and validated Workload document.
type Workload struct {
	Pos Position
	*v1alpha1.Workload
}

// Service is a decoded, defaulted and validated Kubernetes Service document.
type Service struct {
	Pos Position
	*corev1.Service
}

// Set is the typed content of one or more files. Slices are sorted by namespace/name.
//
// The objects are shared, not copied, by Merge and Combine and by whoever reads a Set:
// treat a Set you did not build yourself as read-only.
type Set struct {
	Workloads []Workload
	Services  []Service
}

// ObjectRef names one object of a Set and where it is defined.
type ObjectRef struct {
	Kind, Namespace, Name string
	Pos                   Position
}

// String is "Kind namespace/name".
func (r ObjectRef) String() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

func (w Workload) ref() ObjectRef {
	return ObjectRef{Kind: v1alpha1.KindWorkload, Namespace: w.Namespace, Name: w.Name, Pos: w.Pos}
}

func (s Service) ref() ObjectRef {
	return ObjectRef{Kind: "Service", Namespace: s.Namespace, Name: s.Name, Pos: s.Pos}
}

// object is an element of one of Set's slices.
type object interface {
	Workload | Service
	ref() ObjectRef
}

// Objects lists every object of s in s's order, kind by kind.
func (s *Set) Objects() []ObjectRef {
	if s == nil {
		return nil
	}
	var out []ObjectRef
	out = appendRefs(out, s.Workloads)
	out = appendRefs(out, s.Services)
	return out
}

func appendRefs[T object](out []ObjectRef, objs []T) []ObjectRef {
	for _, o := range objs {
		out = append(out, o.ref())
	}
	return out
}

// Merge is a new Set holding the objects of s and other, sorted. It does not look for
// duplicates; Combine does.
func (s *Set) Merge(other *Set) *Set {
	out := &Set{}
	for _, in := range []*Set{s, other} {
		if in != nil {
			out.Workloads = append(out.Workloads, in.Workloads...)
			out.Services = append(out.Services, in.Services...)
		}
	}
	out.sort()
	return out
}

// Combine merges sets in order. When an object (kind, namespace, name) is defined more
// than once, the first definition is kept and every other is reported as an Error at
// its own position that names the kept one's.
func Combine(sets ...*Set) (*Set, ErrorList) {
	out := &Set{}
	seen := map[ObjectRef]Position{}
	var errs ErrorList
	keep := func(r ObjectRef) bool {
		key := ObjectRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
		if first, dup := seen[key]; dup {
			errs = append(errs, &Error{
				Pos: r.Pos, Kind: r.Kind, Name: r.Namespace + "/" + r.Name,
				Msg: fmt.Sprintf("defined twice: here and at %s (the one at %s is used)", first, first),
			})
			return false
		}
		seen[key] = r.Pos
		return true
	}
	for _, s := range sets {
		if s != nil {
			out.Workloads = appendKept(out.Workloads, s.Workloads, keep)
			out.Services = appendKept(out.Services, s.Services, keep)
		}
	}
	out.sort()
	errs.sort()
	return out, errs
}

func appendKept[T object](out, in []T, keep func(ObjectRef) bool) []T {
	for _, o := range in {
		if keep(o.ref()) {
			out = append(out, o)
		}
	}
	return out
}

func (s *Set) sort() {
	sortObjects(s.Workloads)
	sortObjects(s.Services)
}

func sortObjects[T object](objs []T) {
	slices.SortStableFunc(objs, func(a, b T) int {
		ra, rb := a.ref(), b.ref()
		return cmp.Or(
			cmp.Compare(ra.Namespace, rb.Namespace),
			cmp.Compare(ra.Name, rb.Name),
			cmp.Compare(ra.Pos.File, rb.Pos.File),
			cmp.Compare(ra.Pos.Line, rb.Pos.Line),
		)
	})
}
