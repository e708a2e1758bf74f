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

// Set is the typed content of one or more files: one slice per kind, each sorted by
// namespace/name.
//
// The objects are shared, not copied, by Merge and Combine and by whoever reads a Set:
// treat a Set you did not build yourself as read-only.
type Set struct {
	Workloads []Workload
	Services  []Service

	// Istio traffic management (networking.istio.io).
	VirtualServices  []VirtualService
	DestinationRules []DestinationRule
	ServiceEntries   []ServiceEntry
	WorkloadEntries  []WorkloadEntry
	Sidecars         []Sidecar

	// Istio security (security.istio.io).
	PeerAuthentications    []PeerAuthentication
	AuthorizationPolicies  []AuthorizationPolicy
	RequestAuthentications []RequestAuthentication

	// Gateway API routes (gateway.networking.k8s.io), in mesh mode: parentRefs name Services.
	HTTPRoutes []HTTPRoute
	GRPCRoutes []GRPCRoute

	// Trellis policies (trellis.dev).
	RateLimitPolicies []RateLimitPolicy
}

// lists is every slice of s, kind by kind, in the order of Set's fields. Adding a
// kind to Set means adding it here; Objects, Merge, Combine and sorting follow.
func (s *Set) lists() []objectList {
	return []objectList{
		kindList[Workload]{&s.Workloads},
		kindList[Service]{&s.Services},
		kindList[VirtualService]{&s.VirtualServices},
		kindList[DestinationRule]{&s.DestinationRules},
		kindList[ServiceEntry]{&s.ServiceEntries},
		kindList[WorkloadEntry]{&s.WorkloadEntries},
		kindList[Sidecar]{&s.Sidecars},
		kindList[PeerAuthentication]{&s.PeerAuthentications},
		kindList[AuthorizationPolicy]{&s.AuthorizationPolicies},
		kindList[RequestAuthentication]{&s.RequestAuthentications},
		kindList[HTTPRoute]{&s.HTTPRoutes},
		kindList[GRPCRoute]{&s.GRPCRoutes},
		kindList[RateLimitPolicy]{&s.RateLimitPolicies},
	}
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
type object interface{ ref() ObjectRef }

// objectList is one of a Set's slices, whatever its kind.
type objectList interface {
	// appendFrom appends the objects of other, a list of the same kind, that keep
	// accepts (all of them if keep is nil).
	appendFrom(other objectList, keep func(ObjectRef) bool)
	appendRefs(out []ObjectRef) []ObjectRef
	sort()
}

// kindList is a pointer to a Set's slice of one kind.
type kindList[T object] struct{ p *[]T }

func (l kindList[T]) appendFrom(other objectList, keep func(ObjectRef) bool) {
	for _, o := range *other.(kindList[T]).p {
		if keep == nil || keep(o.ref()) {
			*l.p = append(*l.p, o)
		}
	}
}

func (l kindList[T]) appendRefs(out []ObjectRef) []ObjectRef {
	for _, o := range *l.p {
		out = append(out, o.ref())
	}
	return out
}

func (l kindList[T]) sort() {
	slices.SortStableFunc(*l.p, func(a, b T) int {
		ra, rb := a.ref(), b.ref()
		return cmp.Or(
			cmp.Compare(ra.Namespace, rb.Namespace),
			cmp.Compare(ra.Name, rb.Name),
			cmp.Compare(ra.Pos.File, rb.Pos.File),
			cmp.Compare(ra.Pos.Line, rb.Pos.Line),
		)
	})
}

// Objects lists every object of s in s's order, kind by kind.
func (s *Set) Objects() []ObjectRef {
	if s == nil {
		return nil
	}
	var out []ObjectRef
	for _, l := range s.lists() {
		out = l.appendRefs(out)
	}
	return out
}

// Merge is a new Set holding the objects of s and other, sorted. It does not look for
// duplicates; Combine does.
func (s *Set) Merge(other *Set) *Set {
	out := &Set{}
	for _, in := range []*Set{s, other} {
		if in != nil {
			appendSet(out, in, nil)
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
			appendSet(out, s, keep)
		}
	}
	out.sort()
	errs.sort()
	return out, errs
}

// appendSet appends to out the objects of in that keep accepts (all if keep is nil).
func appendSet(out, in *Set, keep func(ObjectRef) bool) {
	from := in.lists()
	for i, l := range out.lists() {
		l.appendFrom(from[i], keep)
	}
}

func (s *Set) sort() {
	for _, l := range s.lists() {
		l.sort()
	}
}
