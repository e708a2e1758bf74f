package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// Descriptor keys and the domain, as docs/ratelimit.md defines them.
const (
	// DefaultDomain is the RLS domain of Trellis's descriptors.
	DefaultDomain = "trellis"
	// KeyPolicy is the key of a descriptor's first entry, whose value is a Rule's ID.
	KeyPolicy = "policy"
	// KeySourcePrincipal is the key of the client's principal.
	KeySourcePrincipal = "source.principal"
	// HeaderKeyPrefix prefixes the lowercased name of a selected header.
	HeaderKeyPrefix = "header."
)

// Entry is one key/value entry of a descriptor.
type Entry struct{ Key, Value string }

// Limit is a number of requests per period.
type Limit struct {
	Requests uint32
	Per      time.Duration
}

// Header is a request's headers; http.Header is one. Get is case-insensitive.
type Header interface {
	Get(name string) string
}

// Request is what rules look at in a request.
type Request struct {
	Method string
	// Path is the request's path, without the query.
	Path   string
	Header Header
	// SourcePrincipal is the client's authenticated identity ("cluster.local/ns/shop/sa/
	// frontend"); empty when the client is not authenticated.
	SourcePrincipal string
}

// Rule is one compiled rule of a RateLimitPolicy.
type Rule struct {
	// ID is "<namespace>/<policy name>/<rule index>", the value of the descriptor's
	// policy entry.
	ID string
	// Namespace and Policy name the policy; Index is the rule's index in it.
	Namespace, Policy string
	Index             int
	Scope             v1alpha1.RateLimitScope
	Limit             Limit
	Shadow            bool
	// Targets are the policy's targetRefs.
	Targets []v1alpha1.PolicyTargetRef

	matches    []match
	headers    []headerSelector // every selector's headers, in the order written
	principals [][]string       // each selector's sourcePrincipals; all must hold
}

type headerSelector struct {
	name     string // canonical (X-User), so that http.Header.Get need not allocate
	key      string // HeaderKeyPrefix + lowercased name
	distinct bool
	value    string // for an exact selector
}

type match struct {
	path       string
	pathPrefix bool
	hasPath    bool
	method     string
	headers    []v1alpha1.RateLimitHeaderMatch
}

// Table is every compiled rule, looked up by ID.
type Table struct {
	rules []*Rule
	byID  map[string]*Rule
}

// Compile compiles policies into a Table, in the order given. It checks what the rules
// need to be counted (the config package validates the rest, with positions); the
// error names every policy and rule that fails.
func Compile(policies []*v1alpha1.RateLimitPolicy) (*Table, error) {
	t := &Table{byID: map[string]*Rule{}}
	var errs []error
	for _, p := range policies {
		for i := range p.Spec.Rules {
			r, err := compileRule(p, i)
			if err != nil {
				errs = append(errs, fmt.Errorf("RateLimitPolicy %s/%s: rules[%d]: %w", p.Namespace, p.Name, i, err))
				continue
			}
			if _, dup := t.byID[r.ID]; dup {
				errs = append(errs, fmt.Errorf("RateLimitPolicy %s/%s: defined twice", p.Namespace, p.Name))
				break
			}
			t.rules = append(t.rules, r)
			t.byID[r.ID] = r
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

func compileRule(p *v1alpha1.RateLimitPolicy, i int) (*Rule, error) {
	in := p.Spec.Rules[i]
	r := &Rule{
		ID:        p.Namespace + "/" + p.Name + "/" + strconv.Itoa(i),
		Namespace: p.Namespace, Policy: p.Name, Index: i,
		Scope:   cmp.Or(in.Scope, v1alpha1.ScopeLocal),
		Limit:   Limit{Requests: in.Limit.Requests, Per: in.Limit.Per.Duration},
		Shadow:  in.Shadow,
		Targets: slices.Clone(p.Spec.TargetRefs),
	}
	switch {
	case r.Limit.Requests == 0:
		return nil, errors.New("limit.requests must be at least 1")
	case r.Limit.Per < time.Second || r.Limit.Per%time.Second != 0:
		return nil, fmt.Errorf("limit.per %s is not a whole number of seconds", r.Limit.Per)
	}
	for _, sel := range in.ClientSelectors {
		for _, h := range sel.Headers {
			hs := headerSelector{name: textproto.CanonicalMIMEHeaderKey(h.Name), key: HeaderKeyPrefix + strings.ToLower(h.Name), value: h.Value}
			switch h.Type {
			case v1alpha1.HeaderSelectorDistinct:
				hs.distinct = true
			case v1alpha1.HeaderSelectorExact, "":
			default:
				return nil, fmt.Errorf("header selector %q: unknown type %q", h.Name, h.Type)
			}
			r.headers = append(r.headers, hs)
		}
		if len(sel.SourcePrincipals) > 0 {
			r.principals = append(r.principals, slices.Clone(sel.SourcePrincipals))
		}
	}
	for _, m := range in.Matches {
		cm := match{method: m.Method, headers: slices.Clone(m.Headers)}
		for i := range cm.headers {
			cm.headers[i].Name = textproto.CanonicalMIMEHeaderKey(cm.headers[i].Name)
		}
		if m.Path != nil {
			cm.hasPath, cm.path = true, m.Path.Value
			cm.pathPrefix = m.Path.Type != v1alpha1.PathMatchExact
		}
		r.matches = append(r.matches, cm)
	}
	return r, nil
}

// Rules is every rule, in the order of the policies and their rules.
func (t *Table) Rules() []*Rule { return t.rules }

// Rule is the rule with id, or nil.
func (t *Table) Rule(id string) *Rule { return t.byID[id] }

// ForTarget is every rule of the policies in namespace attached to the object kind/name
// (such as Service checkout), and, for a Service, those attached to the namespace.
func (t *Table) ForTarget(namespace, kind, name string) []*Rule {
	var out []*Rule
	for _, r := range t.rules {
		if r.Namespace != namespace {
			continue
		}
		for _, ref := range r.Targets {
			if (ref.Kind == kind && ref.Name == name) || (kind == "Service" && ref.Kind == "Namespace") {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Applies says whether r counts req: one of its matches holds (or it has none) and
// every client selector holds.
func (r *Rule) Applies(req *Request) bool {
	if !r.matchesRequest(req) {
		return false
	}
	for _, h := range r.headers {
		v := headerValue(req.Header, h.name)
		if v == "" || (!h.distinct && v != h.value) {
			return false
		}
	}
	for _, set := range r.principals {
		if !principalIn(req.SourcePrincipal, set) {
			return false
		}
	}
	return true
}

func (r *Rule) matchesRequest(req *Request) bool {
	if len(r.matches) == 0 {
		return true
	}
	for _, m := range r.matches {
		if m.holds(req) {
			return true
		}
	}
	return false
}

func (m *match) holds(req *Request) bool {
	if m.hasPath {
		if m.pathPrefix {
			if !hasPathPrefix(req.Path, m.path) {
				return false
			}
		} else if req.Path != m.path {
			return false
		}
	}
	if m.method != "" && req.Method != m.method {
		return false
	}
	for _, h := range m.headers {
		if headerValue(req.Header, h.Name) != h.Value {
			return false
		}
	}
	return true
}

// hasPathPrefix matches path against prefix element by element: /api matches /api and
// /api/x, not /apix.
func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

func headerValue(h Header, name string) string {
	if h == nil {
		return ""
	}
	return h.Get(name)
}

func principalIn(p string, set []string) bool {
	if p == "" {
		return false
	}
	for _, s := range set {
		if s == "*" || s == p {
			return true
		}
	}
	return false
}

// AppendDescriptor appends to dst the descriptor entries of req for r and reports
// whether r applies to req; when it does not, dst is returned unchanged.
func (r *Rule) AppendDescriptor(dst []Entry, req *Request) ([]Entry, bool) {
	if !r.Applies(req) {
		return dst, false
	}
	dst = append(dst, Entry{KeyPolicy, r.ID})
	for _, h := range r.headers {
		dst = append(dst, Entry{h.key, headerValue(req.Header, h.name)})
	}
	if len(r.principals) > 0 {
		dst = append(dst, Entry{KeySourcePrincipal, req.SourcePrincipal})
	}
	return dst, true
}

// Resolve is the Global rule that entries, a descriptor, stands for, or nil when it
// names no Global rule or its entries are not those the rule asks for (keys in the
// order of AppendDescriptor, exact header values and principals that the rule selects).
func (t *Table) Resolve(entries []Entry) *Rule {
	if len(entries) == 0 || entries[0].Key != KeyPolicy {
		return nil
	}
	r := t.byID[entries[0].Value]
	if r == nil || r.Scope != v1alpha1.ScopeGlobal {
		return nil
	}
	want := 1 + len(r.headers)
	if len(r.principals) > 0 {
		want++
	}
	if len(entries) != want {
		return nil
	}
	for i, h := range r.headers {
		e := entries[1+i]
		if e.Key != h.key || e.Value == "" || (!h.distinct && e.Value != h.value) {
			return nil
		}
	}
	if len(r.principals) > 0 {
		e := entries[want-1]
		if e.Key != KeySourcePrincipal {
			return nil
		}
		for _, set := range r.principals {
			if !principalIn(e.Value, set) {
				return nil
			}
		}
	}
	return r
}
