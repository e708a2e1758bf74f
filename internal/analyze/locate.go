package analyze

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"trellis.dev/trellis/internal/config"
)

// Locator finds the line of a field in the mesh files. config positions a
// resource at its document; a problem found later (by the model) names a field of
// it, and the Locator re-reads the file to point at that field's own line.
type Locator struct {
	// ReadFile reads a mesh file (os.ReadFile in production).
	ReadFile func(path string) ([]byte, error)
	docs     map[string][]*yaml.Node // parsed files, by path; nil entry: unreadable
}

// Locate returns copies of errs whose positions point at their fields' lines where
// the files still hold them; an error that cannot be placed better keeps its
// position. Each file is read once per call.
func (l *Locator) Locate(errs []*config.Error) []*config.Error {
	l.docs = map[string][]*yaml.Node{}
	out := make([]*config.Error, len(errs))
	for i, e := range errs {
		c := *e
		if line := l.line(e); line > 0 {
			c.Pos.Line = line
		}
		out[i] = &c
	}
	return out
}

// line is the line of e's field, or 0.
func (l *Locator) line(e *config.Error) int {
	if e.Field == "" || e.Pos.File == "" {
		return 0
	}
	docs, ok := l.docs[e.Pos.File]
	if !ok {
		docs = l.parse(e.Pos.File)
		l.docs[e.Pos.File] = docs
	}
	for _, root := range docs {
		if root.Line != e.Pos.Line {
			continue
		}
		return lookup(root, splitField(e.Field))
	}
	return 0
}

// parse reads the top-level mapping of every document of a file.
func (l *Locator) parse(path string) []*yaml.Node {
	data, err := l.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []*yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) || err != nil {
			return out
		}
		if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
			out = append(out, doc.Content[0])
		}
	}
}

// step is one element of a field path: a key, or a list index when index >= 0.
type step struct {
	key   string
	index int
}

// splitField cuts a field path as config spells it (spec.http[0].match[0].headers.x-user,
// metadata.labels["app.kubernetes.io/name"]) into steps.
func splitField(field string) []step {
	var out []step
	for i := 0; i < len(field); {
		switch field[i] {
		case '.':
			i++
		case '[':
			end := strings.IndexByte(field[i:], ']')
			if end < 0 {
				return out
			}
			inner := field[i+1 : i+end]
			if n, err := strconv.Atoi(inner); err == nil {
				out = append(out, step{index: n})
			} else if s, err := strconv.Unquote(inner); err == nil {
				out = append(out, step{key: s, index: -1})
			}
			i += end + 1
		default:
			end := strings.IndexAny(field[i:], ".[")
			if end < 0 {
				end = len(field) - i
			}
			out = append(out, step{key: field[i : i+end], index: -1})
			i += end
		}
	}
	return out
}

// lookup is the line of the deepest node of path found below root.
func lookup(root *yaml.Node, path []step) int {
	line, n := root.Line, root
	for _, s := range path {
		n = resolve(n)
		var at, next *yaml.Node
		switch {
		case s.index >= 0 && n.Kind == yaml.SequenceNode && s.index < len(n.Content):
			at, next = n.Content[s.index], n.Content[s.index]
		case s.index < 0 && n.Kind == yaml.MappingNode:
			at, next = mapEntry(n, s.key)
		}
		if next == nil {
			return line
		}
		line, n = at.Line, next
	}
	return line
}

// mapEntry finds a key, as written or in its proto (snake_case) spelling.
func mapEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, want := range []string{key, snakeCase(key)} {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if resolve(n.Content[i]).Value == want {
				return n.Content[i], n.Content[i+1]
			}
		}
	}
	return nil, nil
}

func snakeCase(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}
