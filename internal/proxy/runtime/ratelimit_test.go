package runtime

import (
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRateLimitDescriptors(t *testing.T) {
	rl := &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{
		{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
			DescriptorKey: "policy", DescriptorValue: "ns/p/0", ExpectMatch: wrapperspb.Bool(true),
			Headers: []*routev3.HeaderMatcher{
				{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `^/api(/[^?]*)?(\?.*)?$`}}}}},
				{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "POST"}}}},
			}}}},
		{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{
			HeaderName: "x-user", DescriptorKey: "header.x-user"}}},
		{ActionSpecifier: &routev3.RateLimit_Action_Metadata{Metadata: &routev3.RateLimit_Action_MetaData{
			DescriptorKey: "source.principal",
			MetadataKey: &metadatav3.MetadataKey{Key: PeerMetadataFilter, Path: []*metadatav3.MetadataKey_PathSegment{{
				Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: PeerPrincipalKey}}}}}}},
	}}
	policies, err := parseRateLimits([]*routev3.RateLimit{rl}, "rate_limits")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, target, user, principal string
		want                                  []DescriptorEntry
	}{
		{name: "all hold", method: "POST", target: "/api/x?q=1", user: "alice", principal: "cluster.local/ns/a/sa/b",
			want: []DescriptorEntry{{"policy", "ns/p/0"}, {"header.x-user", "alice"}, {"source.principal", "cluster.local/ns/a/sa/b"}}},
		{name: "path element prefix only", method: "POST", target: "/apix", user: "alice", principal: "p"},
		{name: "another method", method: "GET", target: "/api", user: "alice", principal: "p"},
		{name: "no header", method: "POST", target: "/api", principal: "p"},
		{name: "no principal", method: "POST", target: "/api", user: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			if tt.user != "" {
				r.Header.Set("X-User", tt.user)
			}
			got, ok := policies[0].AppendDescriptor(nil, r, tt.principal)
			if ok != (tt.want != nil) {
				t.Fatalf("made a descriptor: %v, want %v (%v)", ok, tt.want != nil, got)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("descriptor (-want +got):\n%s", diff)
			}
		})
	}
	bad := &routev3.RateLimit{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}}}
	if _, err := parseRateLimits([]*routev3.RateLimit{bad}, "rate_limits"); err == nil {
		t.Error("remote_address action accepted; want an error")
	}
}
