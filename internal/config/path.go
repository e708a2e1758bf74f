package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fieldPath is the JSON path of a field inside a document, such as spec.ports[0].port.
type fieldPath []pathElem

// pathElem is one step of a fieldPath: a mapping key, or a list index when isIndex.
type pathElem struct {
	key     string
	index   int
	isIndex bool
}

// field builds a path from keys (strings) and list indexes (ints).
func field(elems ...any) fieldPath {
	var p fieldPath
	for _, e := range elems {
		switch e := e.(type) {
		case string:
			p = p.key(e)
		case int:
			p = p.index(e)
		default:
			panic("config: field path element must be a string or an int")
		}
	}
	return p
}

// key is p followed by a mapping key. It never shares p's backing array.
func (p fieldPath) key(k string) fieldPath {
	return append(p[:len(p):len(p)], pathElem{key: k})
}

// index is p followed by a list index. It never shares p's backing array.
func (p fieldPath) index(i int) fieldPath {
	return append(p[:len(p):len(p)], pathElem{index: i, isIndex: true})
}

// String spells p as users read it: spec.ports[0].port, metadata.labels["app.kubernetes.io/name"].
func (p fieldPath) String() string {
	var b strings.Builder
	for _, e := range p {
		switch {
		case e.isIndex:
			b.WriteString("[" + strconv.Itoa(e.index) + "]")
		case plainKey(e.key):
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e.key)
		default:
			b.WriteString("[" + strconv.Quote(e.key) + "]")
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		ok := r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

// lookup finds where the field at p is written below root: the key of a mapping entry,
// or a list item. When part of p is absent it returns where the closest enclosing field
// that is present is written, so a problem with a missing field points at its parent.
func lookup(root *yaml.Node, p fieldPath) *yaml.Node {
	at, n := root, resolve(root)
	for _, e := range p {
		k, v := entry(n, e)
		if v == nil {
			return at
		}
		at, n = k, v
	}
	return at
}

// child is the value one step below n, or nil.
func child(n *yaml.Node, e pathElem) *yaml.Node {
	_, v := entry(n, e)
	return v
}

// entry finds one step below n: the key node and value of a mapping entry, or a list
// item (twice, the second time with aliases resolved). It returns nils if there is none.
func entry(n *yaml.Node, e pathElem) (at, value *yaml.Node) {
	switch {
	case e.isIndex && n.Kind == yaml.SequenceNode:
		if e.index >= 0 && e.index < len(n.Content) {
			return n.Content[e.index], resolve(n.Content[e.index])
		}
	case !e.isIndex && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			if k.Kind == yaml.ScalarNode && k.Value == e.key && k.ShortTag() != mergeTag {
				return n.Content[i], resolve(n.Content[i+1])
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if resolve(n.Content[i]).ShortTag() == mergeTag {
				for _, m := range mergeSources(n.Content[i+1]) {
					if k, v := entry(m, e); v != nil {
						return k, v
					}
				}
			}
		}
	}
	return nil, nil
}

// lookupJSONField finds the node of an encoding/json error's Field, a dotted path of
// keys without list indexes: in a list it takes the first item that has the key.
func lookupJSONField(root *yaml.Node, jsonField string) *yaml.Node {
	n := resolve(root)
	for _, k := range strings.Split(jsonField, ".") {
		next := findKey(n, k)
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

func findKey(n *yaml.Node, k string) *yaml.Node {
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			if v := findKey(resolve(item), k); v != nil {
				return v
			}
		}
		return nil
	}
	return child(n, pathElem{key: k})
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// mergeTag is the tag of the "<<" key that merges other mappings into a mapping.
const mergeTag = "!!merge"

// mergeSources are the mappings a "<<" key's value merges in: one mapping or a list of
// them, earlier ones taking precedence.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, item := range v.Content {
			if item = resolve(item); item.Kind == yaml.MappingNode {
				out = append(out, item)
			}
		}
		return out
	}
	return nil
}
