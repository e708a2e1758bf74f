package xdsserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"trellis.dev/trellis/internal/xdsgen"
)

// Sharing between nodes. Push is given, per node, its scoped resources (one
// *xdsgen.Resources shared by every node of a scope) and its own. It stores, per
// resource type, one typeSet for each distinct combination of the two parts: the
// nodes of a scope whose own part has no resource of that type (endpoints, routes),
// or the same ones (an inbound cluster every workload of a service has), share one
// map of resources and one map of versions. A node's snapshot is five pointers to
// typeSets. A resource's version is a hash of its deterministic serialization,
// computed once per push for each distinct resource object; equal resources of
// different scopes (a service that fifty namespaces see) are interned to one object.
//
// The cache holds each resource in its serialized form (wire): go-control-plane
// serializes a resource for every response that carries it, once per stream, which
// for thousands of proxies sharing one route configuration was most of the control
// plane's work; serializing a wire resource copies its bytes.

// Proxy is what Push sends one node.
type Proxy struct {
	// Scoped are the resources the node shares with the other nodes of its scope:
	// pass the same pointer to each of them. Nil: none.
	Scoped *xdsgen.Resources
	// Own are the node's own resources. Nil: none. A resource in both is Own's.
	Own *xdsgen.Resources
}

// typeSet is the resources of one type that one or more nodes have; read-only
// once built, since the cache reads its maps from every stream.
type typeSet struct {
	version  string
	items    map[string]types.ResourceWithTTL
	plain    map[string]types.Resource
	versions map[string]string
	// delta are the resources as Delta responses carry them, sorted by name
	// (delta.go).
	delta []*discoveryv3.Resource
}

// nodeSnapshot is a node's snapshot for go-control-plane's cache: one typeSet per
// type, every type present (an empty one has a version too, so that a State of
// the World client's first request is answered).
type nodeSnapshot struct {
	sets [types.UnknownType]*typeSet
}

var _ cachev3.ResourceSnapshot = (*nodeSnapshot)(nil)

func (n *nodeSnapshot) set(typeURL string) *typeSet {
	return n.typeSet(cachev3.GetResponseType(typeURL))
}

// typeSet is the node's set of type t; an empty one if it has none.
func (n *nodeSnapshot) typeSet(t types.ResponseType) *typeSet {
	if t == types.UnknownType || n.sets[t] == nil {
		return &typeSet{}
	}
	return n.sets[t]
}

func (n *nodeSnapshot) GetVersion(typeURL string) string { return n.set(typeURL).version }
func (n *nodeSnapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	return n.set(typeURL).items
}
func (n *nodeSnapshot) GetResources(typeURL string) map[string]types.Resource {
	return n.set(typeURL).plain
}
func (n *nodeSnapshot) ConstructVersionMap() error { return nil } // built with the sets
func (n *nodeSnapshot) GetVersionMap(typeURL string) map[string]string {
	return n.set(typeURL).versions
}

// versions returns the node's version per type.
func (n *nodeSnapshot) versions() versions {
	var v versions
	for _, t := range resourceTypes {
		v[t] = n.sets[t].version
	}
	return v
}

// entry is one resource with its name and version: res is its serialized form,
// obj the object the caller gave.
type entry struct {
	t             types.ResponseType
	name, version string
	res           types.Resource
	obj           types.Resource
}

// part is the resources of one type of one Resources, sorted by name, and a key
// that identifies their names and versions.
type part struct {
	key     string
	entries []entry
}

// sharer builds the typeSets of one push. interned holds the resources of the
// previous push by type, name and version, so that an unchanged resource keeps its
// object (and the memory of the new copy is freed).
type sharer struct {
	interned, next map[string]types.Resource
	// hashed is the version of each object seen this push; prevHashed of the
	// previous push, for the objects the caller passes again.
	hashed, prevHashed map[types.Resource]hashed
	// parts are the parts of each Resources seen this push; prevParts of the
	// previous push, for the Resources the caller passes again.
	parts, prevParts map[*xdsgen.Resources]*[types.UnknownType]part
	sets             map[setKey]*typeSet
}

// setKey identifies a typeSet: its type and the keys of its two parts.
type setKey struct {
	t           types.ResponseType
	scoped, own string
}

// pushState is what a push leaves to the next.
type pushState struct {
	interned map[string]types.Resource
	hashed   map[types.Resource]hashed
	parts    map[*xdsgen.Resources]*[types.UnknownType]part
}

func newSharer(prev pushState) *sharer {
	return &sharer{interned: prev.interned, next: make(map[string]types.Resource),
		hashed: make(map[types.Resource]hashed), prevHashed: prev.hashed,
		parts: make(map[*xdsgen.Resources]*[types.UnknownType]part), prevParts: prev.parts,
		sets: make(map[setKey]*typeSet)}
}

// state is what the next push may reuse.
func (s *sharer) state() pushState {
	return pushState{interned: s.next, hashed: s.hashed, parts: s.parts}
}

// snapshot returns p's snapshot.
func (s *sharer) snapshot(p Proxy) (*nodeSnapshot, error) {
	scoped, err := s.partsOf(p.Scoped)
	if err != nil {
		return nil, err
	}
	own, err := s.partsOf(p.Own)
	if err != nil {
		return nil, err
	}
	snap := &nodeSnapshot{}
	for _, t := range resourceTypes {
		snap.sets[t] = s.typeSet(t, scoped[t], own[t])
	}
	return snap, nil
}

// partsOf splits resources by type, once per Resources object.
func (s *sharer) partsOf(res *xdsgen.Resources) (*[types.UnknownType]part, error) {
	if res == nil {
		return &[types.UnknownType]part{}, nil
	}
	if p, ok := s.parts[res]; ok {
		return p, nil
	}
	if p, ok := s.prevParts[res]; ok {
		// Its resources are unchanged objects: keep them interned and versioned.
		for _, pt := range p {
			for _, e := range pt.entries {
				s.keep(e)
			}
		}
		s.parts[res] = p
		return p, nil
	}
	p, err := s.split(res)
	if err != nil {
		return nil, err
	}
	s.parts[res] = p
	return p, nil
}

// keep carries an entry of the previous push over to this one.
func (s *sharer) keep(e entry) {
	s.next[internKey(e.t, e.name, e.version)] = e.res
	s.hashed[e.obj] = hashed{version: e.version, wire: e.res}
}

func internKey(t types.ResponseType, name, version string) string {
	return strconv.Itoa(int(t)) + "/" + name + "/" + version
}

// split splits resources by type.
func (s *sharer) split(res *xdsgen.Resources) (*[types.UnknownType]part, error) {
	out := &[types.UnknownType]part{}
	byType := map[types.ResponseType][]types.Resource{
		types.Listener: asResources(res.Listeners),
		types.Route:    asResources(res.Routes),
		types.Cluster:  asResources(res.Clusters),
		types.Endpoint: asResources(res.Endpoints),
		types.Secret:   asResources(res.Secrets),
	}
	for t, list := range byType {
		if len(list) == 0 {
			continue
		}
		p := part{entries: make([]entry, 0, len(list))}
		h := sha256.New()
		for _, r := range list {
			e, err := s.entry(t, r)
			if err != nil {
				return nil, err
			}
			p.entries = append(p.entries, e)
			fmt.Fprintf(h, "%s\x00%s\x00", e.name, e.version)
		}
		p.key = hex.EncodeToString(h.Sum(nil)[:8])
		out[t] = p
	}
	return out, nil
}

// hashed is a resource object's version and serialized form.
type hashed struct {
	version string
	wire    types.Resource
}

// entry versions r and serializes it (once per object), and interns the result.
func (s *sharer) entry(t types.ResponseType, r types.Resource) (entry, error) {
	name := cachev3.GetResourceName(r)
	h, ok := s.hashed[r]
	if !ok {
		h, ok = s.prevHashed[r]
		if ok {
			s.hashed[r] = h
		}
	}
	if !ok {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return entry{}, fmt.Errorf("serializing %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		version := hex.EncodeToString(sum[:8])
		h = hashed{version: version, wire: newWire(t, name, version, b)}
		s.hashed[r] = h
	}
	k := internKey(t, name, h.version)
	wire := h.wire
	if prev, ok := s.next[k]; ok {
		wire = prev
	} else if prev, ok := s.interned[k]; ok {
		wire = prev
		s.next[k] = prev
	} else {
		s.next[k] = wire
	}
	return entry{t: t, name: name, version: h.version, res: wire, obj: r}, nil
}

// wire is a serialized resource: a message with no fields whose unknown fields are
// the resource's serialization, so that serializing it yields those bytes; and the
// same bytes as a Delta response's resource, shared by every response that carries
// it.
type wire struct {
	*emptypb.Empty
	name  string
	delta *discoveryv3.Resource
}

var _ types.ResourceWithName = wire{}

func newWire(t types.ResponseType, name, version string, b []byte) wire {
	m := &emptypb.Empty{}
	m.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	typeURL, _ := cachev3.GetResponseTypeURL(t)
	return wire{Empty: m, name: name, delta: &discoveryv3.Resource{
		Name: name, Version: version, Resource: &anypb.Any{TypeUrl: typeURL, Value: b}}}
}

// GetName is the resource's name, for go-control-plane.
func (w wire) GetName() string { return w.name }

// typeSet returns the set of the resources of scoped and own (own's win a name
// both have), shared with every node that has the same two parts.
func (s *sharer) typeSet(t types.ResponseType, scoped, own part) *typeSet {
	k := setKey{t: t, scoped: scoped.key, own: own.key}
	if set, ok := s.sets[k]; ok {
		return set
	}
	n := len(scoped.entries) + len(own.entries)
	set := &typeSet{
		items:    make(map[string]types.ResourceWithTTL, n),
		plain:    make(map[string]types.Resource, n),
		versions: make(map[string]string, n),
	}
	for _, list := range [][]entry{scoped.entries, own.entries} {
		for _, e := range list {
			set.items[e.name] = types.ResourceWithTTL{Resource: e.res}
			set.plain[e.name] = e.res
			set.versions[e.name] = e.version
		}
	}
	set.delta = make([]*discoveryv3.Resource, 0, len(set.plain))
	for _, r := range set.plain {
		set.delta = append(set.delta, r.(wire).delta)
	}
	slices.SortFunc(set.delta, func(a, b *discoveryv3.Resource) int { return strings.Compare(a.Name, b.Name) })
	switch {
	case own.key == "":
		set.version = scoped.key
	case scoped.key == "":
		set.version = own.key
	default:
		sum := sha256.Sum256([]byte(scoped.key + "+" + own.key))
		set.version = hex.EncodeToString(sum[:8])
	}
	if set.version == "" {
		set.version = "empty"
	}
	s.sets[k] = set
	return set
}
