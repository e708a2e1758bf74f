package xdsserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

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
}

// nodeSnapshot is a node's snapshot for go-control-plane's cache: one typeSet per
// type, every type present (an empty one has a version too, so that a State of
// the World client's first request is answered).
type nodeSnapshot struct {
	sets [types.UnknownType]*typeSet
}

var _ cachev3.ResourceSnapshot = (*nodeSnapshot)(nil)

func (n *nodeSnapshot) set(typeURL string) *typeSet {
	t := cachev3.GetResponseType(typeURL)
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

// entry is one resource with its name and version.
type entry struct {
	name, version string
	res           types.Resource
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
	hashed, prevHashed map[types.Resource]string
	scoped             map[*xdsgen.Resources]*[types.UnknownType]part
	sets               map[string]*typeSet // by type, scoped key and own key
}

func newSharer(interned map[string]types.Resource, hashed map[types.Resource]string) *sharer {
	return &sharer{interned: interned, next: make(map[string]types.Resource),
		hashed: make(map[types.Resource]string), prevHashed: hashed, scoped: make(map[*xdsgen.Resources]*[types.UnknownType]part),
		sets: make(map[string]*typeSet)}
}

// snapshot returns p's snapshot.
func (s *sharer) snapshot(p Proxy) (*nodeSnapshot, error) {
	var scoped *[types.UnknownType]part
	if p.Scoped != nil {
		scoped = s.scoped[p.Scoped]
		if scoped == nil {
			var err error
			if scoped, err = s.parts(p.Scoped); err != nil {
				return nil, err
			}
			s.scoped[p.Scoped] = scoped
		}
	} else {
		scoped = &[types.UnknownType]part{}
	}
	own, err := s.parts(p.Own)
	if err != nil {
		return nil, err
	}
	snap := &nodeSnapshot{}
	for _, t := range resourceTypes {
		snap.sets[t] = s.typeSet(t, scoped[t], own[t])
	}
	return snap, nil
}

// parts splits resources by type.
func (s *sharer) parts(res *xdsgen.Resources) (*[types.UnknownType]part, error) {
	out := &[types.UnknownType]part{}
	if res == nil {
		return out, nil
	}
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

// entry versions r, and interns it.
func (s *sharer) entry(t types.ResponseType, r types.Resource) (entry, error) {
	name := cachev3.GetResourceName(r)
	version, ok := s.hashed[r]
	if !ok {
		version, ok = s.prevHashed[r]
		if ok {
			s.hashed[r] = version
		}
	}
	if !ok {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			return entry{}, fmt.Errorf("serializing %s: %w", name, err)
		}
		sum := sha256.Sum256(b)
		version = hex.EncodeToString(sum[:8])
		s.hashed[r] = version
	}
	k := fmt.Sprintf("%d/%s/%s", t, name, version)
	if prev, ok := s.next[k]; ok {
		r = prev
	} else if prev, ok := s.interned[k]; ok {
		r = prev
		s.next[k] = prev
	} else {
		s.next[k] = r
	}
	return entry{name: name, version: version, res: r}, nil
}

// typeSet returns the set of the resources of scoped and own (own's win a name
// both have), shared with every node that has the same two parts.
func (s *sharer) typeSet(t types.ResponseType, scoped, own part) *typeSet {
	k := fmt.Sprintf("%d/%s/%s", t, scoped.key, own.key)
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
	switch {
	case own.key == "":
		set.version = scoped.key
	case scoped.key == "":
		set.version = own.key
	default:
		sum := sha256.Sum256([]byte(k))
		set.version = hex.EncodeToString(sum[:8])
	}
	if set.version == "" {
		set.version = "empty"
	}
	s.sets[k] = set
	return set
}
