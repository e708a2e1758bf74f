package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"trellis.dev/trellis/internal/names"
)

// ParseFile reads and parses one file; positions name it as path.
func ParseFile(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{Pos: Position{File: path}, Msg: "reading file: " + pathErrorText(err)}}
	}
	return Parse(path, data)
}

// pathErrorText is err without the path that the error will be positioned at anyway.
func pathErrorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse parses one file of multi-document YAML. name is the file name used in
// positions. The error, if any, is an ErrorList of every problem found; a file with any
// problem is rejected whole.
func Parse(name string, data []byte) (*Set, error) {
	var errs ErrorList
	raw := &Set{}
	for _, c := range splitDocuments(data) {
		d := &document{file: name, offset: c.offset, set: raw, errs: &errs}
		d.parse(c.data)
	}
	set, dups := Combine(raw)
	errs = append(errs, dups...)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return set, nil
}

// LoadFiles parses every file; an object defined in two files is an error. The error,
// if any, is an ErrorList of every problem in every file.
func LoadFiles(paths []string) (*Set, error) {
	var errs ErrorList
	var sets []*Set
	for _, p := range paths {
		s, err := ParseFile(p)
		var list ErrorList
		switch {
		case errors.As(err, &list):
			errs = append(errs, list...)
		case err != nil:
			return nil, fmt.Errorf("loading %s: %w", p, err)
		default:
			sets = append(sets, s)
		}
	}
	set, dups := Combine(sets...)
	errs = append(errs, dups...)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return set, nil
}

// chunk is the text of one YAML document and the number of file lines before it.
type chunk struct {
	data   []byte
	offset int
}

// splitDocuments cuts a file at its "---" lines, so that every document is parsed on
// its own and a syntax error in one does not hide the problems of the others.
func splitDocuments(data []byte) []chunk {
	var chunks []chunk
	start, startLine, line := 0, 0, 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i + 1
		}
		if isDocumentStart(data[i:end]) && i > start {
			chunks = append(chunks, chunk{data: data[start:i], offset: startLine})
			start, startLine = i, line
		}
		i, line = end, line+1
	}
	return append(chunks, chunk{data: data[start:], offset: startLine})
}

// firstContentLine is the 1-based line of the first line of data that is not blank, a
// comment or a "---" marker; 1 if there is none.
func firstContentLine(data []byte) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' && !isDocumentStart(l) {
			return i + 1
		}
	}
	return 1
}

func isDocumentStart(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := line[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// document is one YAML document being decoded.
type document struct {
	file   string
	offset int        // file lines before the document's text
	root   *yaml.Node // the document's top-level mapping
	set    *Set       // where decoded objects go
	errs   *ErrorList

	kind, name string // the resource, for messages
	failed     bool   // a problem was reported in this document
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (not scanner) errors, whose
// line numbers it reports counting from 0.
var yamlParserProblems = []string{
	"did not find expected <stream-start>", "did not find expected <document start>",
	"did not find expected node content", "did not find expected '-' indicator",
	"did not find expected key", "did not find expected ',' or ']'",
	"did not find expected ',' or '}'", "found undefined tag handle",
	"found duplicate %YAML directive", "found incompatible YAML document",
	"found duplicate %TAG directive",
}

// yamlErrorLine is the 1-based line within data, and the message, of a yaml.v3 syntax
// error.
func yamlErrorLine(err error, data []byte) (int, string) {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return firstContentLine(data), strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	if slices.Contains(yamlParserProblems, m[2]) {
		line++
	}
	return max(1, min(line, bytes.Count(bytes.TrimRight(data, "\n"), []byte("\n"))+1)), m[2]
}

// parse decodes one document into d.set with the decodeFunc of its kind.
func (d *document) parse(data []byte) {
	if !d.load(data) {
		return
	}
	apiVersion, kind := d.scalarAt(field("apiVersion")), d.scalarAt(field("kind"))
	switch {
	case apiVersion == "":
		d.errorf(field("apiVersion"), "required")
	case kind == "":
		d.errorf(field("kind"), "required")
	default:
		decode, ok := kinds[typeKey{apiVersion, kind}]
		if !ok {
			d.errorf(field("kind"), "unknown kind %q in apiVersion %q (%s)", kind, apiVersion, supportedKinds(apiVersion, kind))
			return
		}
		decode(d)
	}
}

// load parses the YAML text of the document into d.root and learns its kind and name
// for messages. It returns false when the document is empty or cannot be read.
func (d *document) load(data []byte) bool {
	var top yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		line, msg := yamlErrorLine(err, data)
		d.add(&Error{Pos: Position{File: d.file, Line: line + d.offset}, Msg: "invalid YAML: " + msg})
		return false
	}
	if len(top.Content) == 0 || isNull(top.Content[0]) {
		return false // an empty document
	}
	d.root = resolve(top.Content[0])
	if d.root.Kind != yaml.MappingNode {
		d.errorAt(d.root, nil, "a document must be a mapping with apiVersion, kind and metadata, got "+describe(d.root))
		return false
	}
	if d.kind = d.scalarAt(field("kind")); d.kind != "" {
		if name := d.scalarAt(field("metadata", "name")); name != "" {
			ns := cmp.Or(d.scalarAt(field("metadata", "namespace")), names.DefaultNamespace)
			d.name = ns + "/" + name
		}
	}
	return true
}

// scalarAt is the string value at p, or "" when p is absent or not a scalar.
func (d *document) scalarAt(p fieldPath) string {
	n := d.root
	for _, e := range p {
		if n = child(n, e); n == nil {
			return ""
		}
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return ""
	}
	return n.Value
}

// decode decodes the document into obj, a pointer to the kind's Go type. It reports
// every unknown field and wrongly typed value and returns false if there was any.
func (d *document) decode(obj any) bool {
	c := &converter{d: d, budget: maxNodes}
	v := c.convert(d.root, reflect.TypeOf(obj), nil)
	if c.failed {
		return false
	}
	data, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(data, obj)
	}
	if err != nil { // the walk should have caught it; place it as well as json allows
		n, path := d.root, fieldPath(nil)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			n = lookupJSONField(d.root, te.Field)
			for _, k := range strings.Split(te.Field, ".") {
				path = path.key(k)
			}
		}
		d.errorAt(n, path, jsonErrorText(err))
		return false
	}
	return true
}

// pos is the position of the document's first line.
func (d *document) pos() Position { return Position{File: d.file, Line: d.line(d.root)} }

// line is the file line of node n.
func (d *document) line(n *yaml.Node) int { return n.Line + d.offset }

// errorf reports a problem with the field at p, positioned at p's line or, if p is
// absent, at the line of the closest enclosing field that is present.
func (d *document) errorf(p fieldPath, format string, args ...any) {
	d.errorAt(lookup(d.root, p), p, fmt.Sprintf(format, args...))
}

func (d *document) errorAt(n *yaml.Node, p fieldPath, msg string) {
	d.add(&Error{Pos: Position{File: d.file, Line: d.line(n)}, Field: p.String(), Msg: msg})
}

func (d *document) add(e *Error) {
	e.Kind, e.Name = d.kind, d.name
	d.failed = true
	*d.errs = append(*d.errs, e)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }
