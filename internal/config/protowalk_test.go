package config

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
)

// walkProto converts the value of key "v" in src as message md, the way the converter
// does inside a document, and returns the JSON value and the problems.
func walkProto(t *testing.T, md protoreflect.MessageDescriptor, src string) (any, []string) {
	t.Helper()
	var errs ErrorList
	d := &document{file: "p.yaml", set: &Set{}, errs: &errs}
	if !d.load([]byte(src)) {
		t.Fatalf("loading %q: %v", src, errs)
	}
	c := &converter{d: d, budget: maxNodes}
	n, _ := c.enter(child(d.root, pathElem{key: "v"}), field("v"))
	got := c.message(n, md, field("v"))
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return got, msgs
}

func TestProtoWellKnownTypes(t *testing.T) {
	desc := func(m proto.Message) protoreflect.MessageDescriptor { return m.ProtoReflect().Descriptor() }
	tests := []struct {
		name     string
		md       protoreflect.MessageDescriptor
		src      string
		want     any
		wantErrs []string
	}{
		{name: "duration in seconds", md: desc(&durationpb.Duration{}), src: "v: 1.5s", want: "1.5s"},
		{name: "duration in Go syntax", md: desc(&durationpb.Duration{}), src: "v: 1h2m3.004s", want: "3723.004s"},
		{name: "negative duration", md: desc(&durationpb.Duration{}), src: "v: -250ms", want: "-0.25s"},
		{
			name: "duration without unit", md: desc(&durationpb.Duration{}), src: `v: "10"`,
			wantErrs: []string{`p.yaml:1: v: invalid duration "10": expected a duration string such as "1.5s", "100ms" or "5m"`},
		},
		{name: "timestamp", md: desc(&timestamppb.Timestamp{}), src: "v: 2025-01-02T15:04:05Z", want: "2025-01-02T15:04:05Z"},
		{
			name: "timestamp not RFC 3339", md: desc(&timestamppb.Timestamp{}), src: "v: yesterday",
			wantErrs: []string{`p.yaml:1: v: invalid time "yesterday": write an RFC 3339 time such as "2025-01-02T15:04:05Z"`},
		},
		{name: "bool wrapper", md: desc(&wrapperspb.BoolValue{}), src: "v: true", want: true},
		{
			name: "bool wrapper given a string", md: desc(&wrapperspb.BoolValue{}), src: "v: yes",
			wantErrs: []string{`p.yaml:1: v: wrong type: expected a boolean (true or false), got string "yes"`},
		},
		{name: "double wrapper NaN", md: desc(&wrapperspb.DoubleValue{}), src: "v: .nan", want: "NaN"},
		{name: "int64 wrapper as string", md: desc(&wrapperspb.Int64Value{}), src: `v: "9007199254740993"`, want: json.Number("9007199254740993")},
		{name: "bytes wrapper", md: desc(&wrapperspb.BytesValue{}), src: "v: aGVsbG8=", want: "aGVsbG8="},
		{
			name: "bytes not base64", md: desc(&wrapperspb.BytesValue{}), src: "v: '#'",
			wantErrs: []string{`p.yaml:1: v: invalid value string "#": not base64`},
		},
		{
			name: "struct takes anything", md: desc(&structpb.Struct{}), src: "v: {a: [1, x, {b: null}]}",
			want: map[string]any{"a": []any{json.Number("1"), "x", map[string]any{"b": nil}}},
		},
		{
			name: "struct must be a mapping", md: desc(&structpb.Struct{}), src: "v: [1]",
			wantErrs: []string{`p.yaml:1: v: wrong type: expected a mapping, got a list`},
		},
		{name: "value", md: desc(&structpb.Value{}), src: "v: 3", want: json.Number("3")},
		{
			name: "enum by name and by number",
			md:   desc(&securityapi.PeerAuthentication{}),
			src:  "v: {mtls: {mode: STRICT}, portLevelMtls: {80: {mode: 1}}}",
			want: map[string]any{"mtls": map[string]any{"mode": "STRICT"}, "portLevelMtls": map[string]any{"80": map[string]any{"mode": json.Number("1")}}},
		},
		{
			name: "enum given a list", md: desc(&securityapi.PeerAuthentication_MutualTLS{}), src: "v: {mode: [STRICT]}",
			wantErrs: []string{`p.yaml:1: v.mode: wrong type: expected one of UNSET, DISABLE, PERMISSIVE, STRICT, got a list`},
		},
		{
			name: "null leaves a field unset",
			md:   desc(&networkingapi.HTTPRoute{}),
			src:  "v: {timeout: null, name: ~}",
			want: map[string]any{},
		},
		{
			name: "keys written with proto names come out with JSON names",
			md:   desc(&networkingapi.HTTPRetry{}),
			src:  "v: {per_try_timeout: 2s, retry_on: 5xx}",
			want: map[string]any{"perTryTimeout": "2s", "retryOn": "5xx"},
		},
		{
			name: "anchors and merge keys",
			md:   desc(&networkingapi.HTTPRetry{}),
			src:  "base: &b {attempts: 2}\nv: {<<: *b, retryOn: reset}",
			want: map[string]any{"attempts": json.Number("2"), "retryOn": "reset"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := walkProto(t, tt.md, tt.src)
			if diff := cmp.Diff(tt.wantErrs, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if tt.wantErrs == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("value (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestSpecDecodedAsProtojson checks that a spec decoded through the document (where
// encoding/json hands the spec to the Istio type's own UnmarshalJSON) is what
// protojson makes of the same spec.
func TestSpecDecodedAsProtojson(t *testing.T) {
	src := lines(
		"apiVersion: networking.istio.io/v1",
		"kind: VirtualService",
		"metadata: {name: reviews}",
		"spec:",
		"  hosts: [reviews]",
		"  http:",
		"  - name: canary",
		"    match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}, ignoreUriCase: true}]",
		"    route:",
		"    - {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 80,",
		"       headers: {request: {set: {x-a: b}}, response: {remove: [x-c]}}}",
		"    - {destination: {host: reviews, subset: v1}, weight: 20}",
		"    timeout: 1m",
		"    retries: {attempts: 2, perTryTimeout: 0.25s, retryOn: 5xx, retryRemoteLocalities: true}",
		"    fault: {abort: {httpStatus: 503, percentage: {value: 0.1}}}",
		"    mirror: {host: shadow}",
		"    mirrorPercentage: {value: 12.5}",
		"    corsPolicy: {allowOrigins: [{exact: https://a.example}], maxAge: 24h}",
	)
	set := parseOne(t, src)

	var errs ErrorList
	d := &document{file: "mesh.yaml", set: &Set{}, errs: &errs}
	d.load([]byte(src))
	c := &converter{d: d, budget: maxNodes}
	spec := c.convert(child(d.root, pathElem{key: "spec"}), reflect.TypeFor[networkingapi.VirtualService](), field("spec"))
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := &networkingapi.VirtualService{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, want); err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if diff := cmp.Diff(want, &set.VirtualServices[0].Spec, protocmp.Transform()); diff != "" {
		t.Errorf("spec (-protojson +decoded):\n%s", diff)
	}
	if got := set.VirtualServices[0].Spec.GetHttp()[0].GetTimeout().AsDuration().Seconds(); got != 60 {
		t.Errorf("timeout = %gs, want 60s", got)
	}
}
