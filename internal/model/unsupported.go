package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/config"
)

// Unsupported lists every field of the traffic resources in cfg that Trellis does
// not implement, each naming its resource, the field and why. It is driven by the
// field tables (fields.go): a populated field whose path is not in its kind's table
// of supported fields is reported, once, at the outermost unsupported field.
func Unsupported(cfg *config.Set) []*config.Error {
	if cfg == nil {
		return nil
	}
	var out []*config.Error
	check := func(obj config.ObjectRef, spec any) {
		table := fieldTables[obj.Kind]
		tree, err := genericTree(spec)
		if err != nil {
			out = append(out, newError(obj, "spec", "cannot check the fields: %v", err))
			return
		}
		table.walk(tree, "spec", "spec", func(field, msg string) {
			out = append(out, newError(obj, field, "%s", msg))
		})
	}
	for _, o := range cfg.VirtualServices {
		check(objectRef("VirtualService", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.DestinationRules {
		check(objectRef("DestinationRule", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.ServiceEntries {
		check(objectRef("ServiceEntry", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.HTTPRoutes {
		check(objectRef("HTTPRoute", &o.ObjectMeta, o.Pos), o.Spec)
	}
	for _, o := range cfg.GRPCRoutes {
		check(objectRef("GRPCRoute", &o.ObjectMeta, o.Pos), o.Spec)
	}
	for _, o := range cfg.PeerAuthentications {
		check(objectRef("PeerAuthentication", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.AuthorizationPolicies {
		check(objectRef("AuthorizationPolicy", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.RequestAuthentications {
		check(objectRef("RequestAuthentication", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	for _, o := range cfg.WorkloadEntries {
		out = append(out, newError(objectRef("WorkloadEntry", &o.ObjectMeta, o.Pos), "",
			"WorkloadEntry is not implemented: list a ServiceEntry's endpoints, or run the workload with a sidecar; ignored"))
	}
	for _, o := range cfg.Sidecars {
		check(objectRef("Sidecar", &o.ObjectMeta, o.Pos), &o.Spec)
	}
	return out
}

// unsupportedf reports an unsupported value found while translating.
func (b *builder) unsupportedf(obj config.ObjectRef, field, format string, args ...any) {
	e := newError(obj, field, format, args...)
	if k := "unsupported " + e.Error(); !b.reported[k] {
		b.reported[k] = true
		b.mesh.Unsupported = append(b.mesh.Unsupported, e)
	}
}

// genericTree is spec as JSON values (maps, lists, scalars): protojson for the
// Istio specs (protobuf messages), encoding/json for the Gateway API's structs.
func genericTree(spec any) (any, error) {
	var data []byte
	var err error
	if m, ok := spec.(proto.Message); ok {
		data, err = protojson.Marshal(m)
	} else {
		data, err = json.Marshal(spec)
	}
	if err != nil {
		return nil, err
	}
	var tree any
	err = json.Unmarshal(data, &tree)
	return tree, err
}

// valueCheck says why a value at a path is not supported, or "" if it is.
type valueCheck func(v any) string

// fieldTable is what Trellis implements of one kind: field patterns are JSON paths
// without list indexes ("spec.http.match.uri.exact"); "*" stands for any key of a
// map ("spec.http.match.headers.*.exact").
type fieldTable struct {
	// supported are the patterns implemented whole: the field and all below it.
	supported map[string]bool
	// inner are the ancestors of supported patterns: walked into.
	inner map[string]bool
	// why says why a known field is not supported.
	why map[string]string
	// checks reject values that are not supported at a supported (or inner) field.
	checks map[string]valueCheck
}

func newFieldTable(supported []string, why map[string]string, checks map[string]valueCheck) *fieldTable {
	t := &fieldTable{supported: map[string]bool{}, inner: map[string]bool{}, why: why, checks: checks}
	for _, p := range supported {
		t.supported[p] = true
		for i := strings.LastIndexByte(p, '.'); i > 0; i = strings.LastIndexByte(p[:i], '.') {
			t.inner[p[:i]] = true
		}
	}
	return t
}

// Supported lists the supported field patterns of t, sorted.
func (t *fieldTable) Supported() []string { return slices.Sorted(maps.Keys(t.supported)) }

func (t *fieldTable) reason(pattern string) string {
	if why, ok := t.why[pattern]; ok {
		return "not supported: " + why + "; ignored"
	}
	return "not supported by Trellis; ignored"
}

// walk reports the outermost unsupported fields of v, found at pattern (display is
// the path with indexes and keys, as users read it).
func (t *fieldTable) walk(v any, pattern, display string, report func(field, msg string)) {
	if check := t.checks[pattern]; check != nil {
		if msg := check(v); msg != "" {
			report(display, msg)
			return
		}
	}
	if t.supported[pattern] {
		return
	}
	if !t.inner[pattern] {
		report(display, t.reason(pattern))
		return
	}
	switch v := v.(type) {
	case map[string]any:
		wildcard := t.inner[pattern+".*"] || t.supported[pattern+".*"]
		for _, k := range sortedKeys(v) {
			p := pattern + "." + k
			if wildcard {
				p = pattern + ".*"
			}
			t.walk(v[k], p, display+pathKey(k), report)
		}
	case []any:
		for i, item := range v {
			t.walk(item, pattern, display+"["+strconv.Itoa(i)+"]", report)
		}
	}
}

// pathKey spells a key in a field path as config does: .key, or ["key"].
func pathKey(k string) string {
	for _, r := range k {
		if r != '_' && r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return "[" + strconv.Quote(k) + "]"
		}
	}
	if k == "" {
		return `[""]`
	}
	return "." + k
}

// stringsOf lists the strings of a JSON list value.
func stringsOf(v any) []string {
	var out []string
	if list, ok := v.([]any); ok {
		for _, item := range list {
			if s, ok := item.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// onlyValues rejects list entries other than allowed.
func onlyValues(why string, allowed ...string) valueCheck {
	return func(v any) string {
		var bad []string
		for _, s := range stringsOf(v) {
			if !slices.Contains(allowed, s) {
				bad = append(bad, strconv.Quote(s))
			}
		}
		if len(bad) == 0 {
			return ""
		}
		return fmt.Sprintf("%s not supported: %s; ignored", strings.Join(bad, ", "), why)
	}
}

// serviceRef rejects a Gateway API reference (parentRef, backendRef) that is not
// a core Service.
func serviceRef(what string) valueCheck {
	return func(v any) string {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		group, _ := m["group"].(string)
		kind, _ := m["kind"].(string)
		if (group == "" || group == "core") && (kind == "" || kind == "Service") {
			return ""
		}
		if group == "" {
			group = "core"
		}
		return fmt.Sprintf("%s of kind %s (group %s) not supported: in mesh mode only Services are; ignored", what, kind, group)
	}
}

// SetFields lists, per kind, the supported field patterns that the documents of cfg
// set (tests use it to show that golden cases cover every supported field).
func SetFields(cfg *config.Set) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	visit := func(kind string, spec any) {
		table := fieldTables[kind]
		tree, err := genericTree(spec)
		if err != nil {
			return
		}
		if out[kind] == nil {
			out[kind] = map[string]bool{}
		}
		table.collect(tree, "spec", out[kind])
	}
	for _, o := range cfg.VirtualServices {
		visit("VirtualService", &o.Spec)
	}
	for _, o := range cfg.DestinationRules {
		visit("DestinationRule", &o.Spec)
	}
	for _, o := range cfg.ServiceEntries {
		visit("ServiceEntry", &o.Spec)
	}
	for _, o := range cfg.HTTPRoutes {
		visit("HTTPRoute", o.Spec)
	}
	for _, o := range cfg.GRPCRoutes {
		visit("GRPCRoute", o.Spec)
	}
	for _, o := range cfg.PeerAuthentications {
		visit("PeerAuthentication", &o.Spec)
	}
	for _, o := range cfg.AuthorizationPolicies {
		visit("AuthorizationPolicy", &o.Spec)
	}
	for _, o := range cfg.RequestAuthentications {
		visit("RequestAuthentication", &o.Spec)
	}
	for _, o := range cfg.Sidecars {
		visit("Sidecar", &o.Spec)
	}
	return out
}

// collect adds the supported patterns set in v, descending below them too.
func (t *fieldTable) collect(v any, pattern string, out map[string]bool) {
	if t.supported[pattern] {
		out[pattern] = true
	}
	switch v := v.(type) {
	case map[string]any:
		wildcard := t.inner[pattern+".*"] || t.supported[pattern+".*"]
		for k, item := range v {
			p := pattern + "." + k
			if wildcard {
				p = pattern + ".*"
			}
			t.collect(item, p, out)
		}
	case []any:
		for _, item := range v {
			t.collect(item, pattern, out)
		}
	}
}
