package config

import (
	"fmt"
	"regexp/syntax"

	"google.golang.org/protobuf/reflect/protoreflect"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Checks on routes beyond the per-field ones: the weights of a split add up to 100,
// and every regular expression compiles (RE2 syntax, as Go and Envoy read it) and is
// small enough to match in bounded time.

// Limits on a regular expression: its length, and the size of the program it compiles
// to (Go's regexp/syntax instructions, after simplification; x{1000} is about 1000).
const (
	maxRegexLength  = 1024
	maxRegexProgram = 1000
)

// checkVirtualServiceRoutes checks the weights of each HTTP, TLS and TCP route and
// every regex in the VirtualService.
func checkVirtualServiceRoutes(d *document, vs *networkingv1.VirtualService) {
	spec := field("spec")
	for i, h := range vs.Spec.GetHttp() {
		var weights []int32
		for _, r := range h.GetRoute() {
			weights = append(weights, r.GetWeight())
		}
		checkWeightSum(d, spec.key("http").index(i).key("route"), weights)
	}
	for i, t := range vs.Spec.GetTls() {
		var weights []int32
		for _, r := range t.GetRoute() {
			weights = append(weights, r.GetWeight())
		}
		checkWeightSum(d, spec.key("tls").index(i).key("route"), weights)
	}
	for i, t := range vs.Spec.GetTcp() {
		var weights []int32
		for _, r := range t.GetRoute() {
			weights = append(weights, r.GetWeight())
		}
		checkWeightSum(d, spec.key("tcp").index(i).key("route"), weights)
	}
	checkProtoRegexes(d, spec, vs.Spec.ProtoReflect())
}

// checkWeightSum: when a route splits traffic between several destinations with
// weights, the weights must add up to 100. A single destination may leave its weight
// out; several without any weight share the traffic equally (the translation warns
// about that). Weights out of range are reported by validateDestination and not again
// here.
func checkWeightSum(d *document, p fieldPath, weights []int32) {
	if len(weights) < 2 {
		return
	}
	sum := 0
	for _, w := range weights {
		if w < 0 || w > 100 {
			return
		}
		sum += int(w)
	}
	if sum != 0 && sum != 100 {
		d.errorf(p, "the weights of the %d destinations add up to %d; they must add up to 100", len(weights), sum)
	}
}

// Istio messages that hold regular expressions, and which of their fields do.
var istioRegexFields = map[protoreflect.FullName]protoreflect.Name{
	(&networkingapi.StringMatch{}).ProtoReflect().Descriptor().FullName():  "regex",
	(&networkingapi.RegexRewrite{}).ProtoReflect().Descriptor().FullName(): "match",
}

// checkProtoRegexes walks a message and checks every regex it holds (StringMatch.regex
// in matches, headers, query parameters and CORS origins; RegexRewrite.match).
func checkProtoRegexes(d *document, p fieldPath, m protoreflect.Message) {
	if name, ok := istioRegexFields[m.Descriptor().FullName()]; ok {
		if fd := m.Descriptor().Fields().ByName(name); fd != nil && m.Has(fd) {
			checkRegex(d, p.key(fd.JSONName()), m.Get(fd).String())
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fp := p.key(fd.JSONName())
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				checkProtoRegexes(d, fp.index(i), v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				checkProtoRegexes(d, fp.key(k.String()), mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			checkProtoRegexes(d, fp, v.Message())
		}
		return true
	})
}

// checkHTTPRouteRegexes checks the RegularExpression path, header and query matches.
func checkHTTPRouteRegexes(d *document, r *gatewayv1.HTTPRoute) {
	for i, rule := range r.Spec.Rules {
		for j, m := range rule.Matches {
			mp := field("spec", "rules", i, "matches", j)
			if m.Path != nil && m.Path.Type != nil && *m.Path.Type == gatewayv1.PathMatchRegularExpression && m.Path.Value != nil {
				checkRegex(d, mp.key("path").key("value"), *m.Path.Value)
			}
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression {
					checkRegex(d, mp.key("headers").index(k).key("value"), h.Value)
				}
			}
			for k, q := range m.QueryParams {
				if q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression {
					checkRegex(d, mp.key("queryParams").index(k).key("value"), q.Value)
				}
			}
		}
	}
}

// checkGRPCRouteRegexes checks the RegularExpression method and header matches.
func checkGRPCRouteRegexes(d *document, r *gatewayv1.GRPCRoute) {
	for i, rule := range r.Spec.Rules {
		for j, m := range rule.Matches {
			mp := field("spec", "rules", i, "matches", j)
			if mm := m.Method; mm != nil && mm.Type != nil && *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression {
				if mm.Service != nil {
					checkRegex(d, mp.key("method").key("service"), *mm.Service)
				}
				if mm.Method != nil {
					checkRegex(d, mp.key("method").key("method"), *mm.Method)
				}
			}
			for k, h := range m.Headers {
				if h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression {
					checkRegex(d, mp.key("headers").index(k).key("value"), h.Value)
				}
			}
		}
	}
}

// checkRegex reports a regex that does not compile or is too large.
func checkRegex(d *document, p fieldPath, re string) {
	if len(re) > maxRegexLength {
		d.errorf(p, "regex is %d bytes long, more than the limit of %d", len(re), maxRegexLength)
		return
	}
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		d.errorf(p, "regex %q does not compile: %s", re, regexError(err))
		return
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		d.errorf(p, "regex %q does not compile: %s", re, regexError(err))
		return
	}
	if n := len(prog.Inst); n > maxRegexProgram {
		d.errorf(p, "regex is too large: it compiles to %d instructions, more than the limit of %d; simplify it", n, maxRegexProgram)
	}
}

// regexError is err without the "error parsing regexp: " prefix.
func regexError(err error) string {
	if se, ok := err.(*syntax.Error); ok {
		return fmt.Sprintf("%s: `%s`", se.Code, se.Expr)
	}
	return err.Error()
}
