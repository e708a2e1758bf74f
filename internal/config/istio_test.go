package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
)

// The examples follow the scenarios of Istio's documentation tasks (request routing,
// traffic shifting, fault injection, timeouts, circuit breaking, mirroring, TCP traffic
// shifting, mTLS, authorization, JWT), written here in our own words.

func dest(host, subset string) *networkingapi.Destination {
	return &networkingapi.Destination{Host: host, Subset: subset}
}

func exact(s string) *networkingapi.StringMatch {
	return &networkingapi.StringMatch{MatchType: &networkingapi.StringMatch_Exact{Exact: s}}
}

func seconds(s float64) *durationpb.Duration {
	return durationpb.New(time.Duration(s * float64(time.Second)))
}

// parseOne parses src, which must be valid, and returns the spec got picks from it.
func parseOne(t *testing.T, src string) *Set {
	t.Helper()
	set, err := Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return set
}

func vsSpec(s *Set) proto.Message { return &s.VirtualServices[0].Spec }
func drSpec(s *Set) proto.Message { return &s.DestinationRules[0].Spec }

func TestIstioKinds(t *testing.T) {
	tests := []struct {
		name string
		src  string
		got  func(*Set) proto.Message
		want proto.Message
	}{
		{
			name: "request routing by header",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: VirtualService",
				"metadata: {name: reviews}",
				"spec:",
				"  hosts: [reviews]",
				"  http:",
				"  - match:",
				"    - headers:",
				"        end-user: {exact: jason}",
				"    route:",
				"    - destination: {host: reviews, subset: v2}",
				"  - route:",
				"    - destination: {host: reviews, subset: v1}",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"reviews"},
				Http: []*networkingapi.HTTPRoute{
					{
						Match: []*networkingapi.HTTPMatchRequest{{Headers: map[string]*networkingapi.StringMatch{"end-user": exact("jason")}}},
						Route: []*networkingapi.HTTPRouteDestination{{Destination: dest("reviews", "v2")}},
					},
					{Route: []*networkingapi.HTTPRouteDestination{{Destination: dest("reviews", "v1")}}},
				},
			},
		},
		{
			name: "traffic shifting 50/50",
			src: lines(
				"apiVersion: networking.istio.io/v1alpha3",
				"kind: VirtualService",
				"metadata: {name: reviews}",
				"spec:",
				"  hosts: [reviews]",
				"  http:",
				"  - route:",
				"    - {destination: {host: reviews, subset: v1}, weight: 50}",
				"    - {destination: {host: reviews, subset: v3}, weight: 50}",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"reviews"},
				Http: []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{
					{Destination: dest("reviews", "v1"), Weight: 50},
					{Destination: dest("reviews", "v3"), Weight: 50},
				}}},
			},
		},
		{
			name: "traffic shifting 80/20, weights as strings as protojson allows",
			src: lines(
				"apiVersion: networking.istio.io/v1beta1",
				"kind: VirtualService",
				"metadata: {name: reviews}",
				"spec:",
				"  hosts: [reviews]",
				"  http:",
				"  - route:",
				"    - destination: {host: reviews, subset: v1}",
				"      weight: 80",
				"    - destination: {host: reviews, subset: v2}",
				`      weight: "20"`,
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"reviews"},
				Http: []*networkingapi.HTTPRoute{{Route: []*networkingapi.HTTPRouteDestination{
					{Destination: dest("reviews", "v1"), Weight: 80},
					{Destination: dest("reviews", "v2"), Weight: 20},
				}}},
			},
		},
		{
			name: "fault injection: delay for one user, abort for everyone",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: VirtualService",
				"metadata: {name: ratings}",
				"spec:",
				"  hosts: [ratings]",
				"  http:",
				"  - match: [{headers: {end-user: {exact: jason}}}]",
				"    fault:",
				"      delay:",
				"        percentage: {value: 100.0}",
				"        fixedDelay: 7s",
				"    route: [{destination: {host: ratings, subset: v1}}]",
				"  - fault:",
				"      abort: {percentage: {value: 50}, httpStatus: 500}",
				"    route: [{destination: {host: ratings, subset: v1}}]",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"ratings"},
				Http: []*networkingapi.HTTPRoute{
					{
						Match: []*networkingapi.HTTPMatchRequest{{Headers: map[string]*networkingapi.StringMatch{"end-user": exact("jason")}}},
						Fault: &networkingapi.HTTPFaultInjection{Delay: &networkingapi.HTTPFaultInjection_Delay{
							Percentage:    &networkingapi.Percent{Value: 100},
							HttpDelayType: &networkingapi.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: seconds(7)},
						}},
						Route: []*networkingapi.HTTPRouteDestination{{Destination: dest("ratings", "v1")}},
					},
					{
						Fault: &networkingapi.HTTPFaultInjection{Abort: &networkingapi.HTTPFaultInjection_Abort{
							Percentage: &networkingapi.Percent{Value: 50},
							ErrorType:  &networkingapi.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 500},
						}},
						Route: []*networkingapi.HTTPRouteDestination{{Destination: dest("ratings", "v1")}},
					},
				},
			},
		},
		{
			name: "request timeout and retries, proto field names and Go durations accepted",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: VirtualService",
				"metadata: {name: reviews}",
				"spec:",
				"  hosts: [reviews]",
				"  http:",
				"  - route: [{destination: {host: reviews, subset: v2}}]",
				"    timeout: 0.5s",
				"    retries:",
				"      attempts: 3",
				"      per_try_timeout: 250ms",
				"      retryOn: 5xx,connect-failure",
				"      backoff: 1m30s",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"reviews"},
				Http: []*networkingapi.HTTPRoute{{
					Route:   []*networkingapi.HTTPRouteDestination{{Destination: dest("reviews", "v2")}},
					Timeout: seconds(0.5),
					Retries: &networkingapi.HTTPRetry{
						Attempts: 3, PerTryTimeout: seconds(0.25), RetryOn: "5xx,connect-failure", Backoff: seconds(90),
					},
				}},
			},
		},
		{
			name: "mirroring",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: VirtualService",
				"metadata: {name: httpbin}",
				"spec:",
				"  hosts: [httpbin]",
				"  http:",
				"  - route:",
				"    - {destination: {host: httpbin, subset: v1}, weight: 100}",
				"    mirror: {host: httpbin, subset: v2}",
				"    mirrorPercentage: {value: 100.0}",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"httpbin"},
				Http: []*networkingapi.HTTPRoute{{
					Route:            []*networkingapi.HTTPRouteDestination{{Destination: dest("httpbin", "v1"), Weight: 100}},
					Mirror:           dest("httpbin", "v2"),
					MirrorPercentage: &networkingapi.Percent{Value: 100},
				}},
			},
		},
		{
			name: "TCP traffic shifting",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: VirtualService",
				"metadata: {name: tcp-echo}",
				"spec:",
				"  hosts: [tcp-echo]",
				"  tcp:",
				"  - match: [{port: 9000}]",
				"    route:",
				"    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}",
				"    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}",
			),
			got: vsSpec,
			want: &networkingapi.VirtualService{
				Hosts: []string{"tcp-echo"},
				Tcp: []*networkingapi.TCPRoute{{
					Match: []*networkingapi.L4MatchAttributes{{Port: 9000}},
					Route: []*networkingapi.RouteDestination{
						{Destination: &networkingapi.Destination{Host: "tcp-echo", Subset: "v1", Port: &networkingapi.PortSelector{Number: 9000}}, Weight: 80},
						{Destination: &networkingapi.Destination{Host: "tcp-echo", Subset: "v2", Port: &networkingapi.PortSelector{Number: 9000}}, Weight: 20},
					},
				}},
			},
		},
		{
			name: "subsets",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: DestinationRule",
				"metadata: {name: reviews}",
				"spec:",
				"  host: reviews",
				"  trafficPolicy:",
				"    loadBalancer: {simple: LEAST_REQUEST}",
				"  subsets:",
				"  - {name: v1, labels: {version: v1}}",
				"  - name: v2",
				"    labels: {version: v2}",
				"    trafficPolicy:",
				"      loadBalancer:",
				"        consistentHash: {httpHeaderName: x-user}",
			),
			got: drSpec,
			want: &networkingapi.DestinationRule{
				Host: "reviews",
				TrafficPolicy: &networkingapi.TrafficPolicy{LoadBalancer: &networkingapi.LoadBalancerSettings{
					LbPolicy: &networkingapi.LoadBalancerSettings_Simple{Simple: networkingapi.LoadBalancerSettings_LEAST_REQUEST},
				}},
				Subsets: []*networkingapi.Subset{
					{Name: "v1", Labels: map[string]string{"version": "v1"}},
					{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networkingapi.TrafficPolicy{
						LoadBalancer: &networkingapi.LoadBalancerSettings{LbPolicy: &networkingapi.LoadBalancerSettings_ConsistentHash{
							ConsistentHash: &networkingapi.LoadBalancerSettings_ConsistentHashLB{
								HashKey: &networkingapi.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"},
							},
						}},
					}},
				},
			},
		},
		{
			name: "circuit breaking",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: DestinationRule",
				"metadata: {name: httpbin}",
				"spec:",
				"  host: httpbin",
				"  trafficPolicy:",
				"    connectionPool:",
				"      tcp: {maxConnections: 1, connectTimeout: 30ms}",
				"      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}",
				"    outlierDetection:",
				"      consecutive5xxErrors: 1",
				"      interval: 1s",
				"      baseEjectionTime: 3m",
				"      maxEjectionPercent: 100",
			),
			got: drSpec,
			want: &networkingapi.DestinationRule{
				Host: "httpbin",
				TrafficPolicy: &networkingapi.TrafficPolicy{
					ConnectionPool: &networkingapi.ConnectionPoolSettings{
						Tcp:  &networkingapi.ConnectionPoolSettings_TCPSettings{MaxConnections: 1, ConnectTimeout: seconds(0.03)},
						Http: &networkingapi.ConnectionPoolSettings_HTTPSettings{Http1MaxPendingRequests: 1, MaxRequestsPerConnection: 1},
					},
					OutlierDetection: &networkingapi.OutlierDetection{
						Consecutive_5XxErrors: wrapperspb.UInt32(1),
						Interval:              seconds(1),
						BaseEjectionTime:      seconds(180),
						MaxEjectionPercent:    100,
					},
				},
			},
		},
		{
			name: "service entry for an external API",
			src: lines(
				"apiVersion: networking.istio.io/v1",
				"kind: ServiceEntry",
				"metadata: {name: httpbin-ext}",
				"spec:",
				"  hosts: [httpbin.example]",
				"  ports: [{number: 80, name: http, protocol: HTTP}]",
				"  resolution: STATIC",
				"  location: MESH_EXTERNAL",
				"  endpoints: [{address: 127.0.0.1, ports: {http: 8080}}]",
			),
			got: func(s *Set) proto.Message { return &s.ServiceEntries[0].Spec },
			want: &networkingapi.ServiceEntry{
				Hosts:      []string{"httpbin.example"},
				Ports:      []*networkingapi.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
				Resolution: networkingapi.ServiceEntry_STATIC,
				Location:   networkingapi.ServiceEntry_MESH_EXTERNAL,
				Endpoints:  []*networkingapi.WorkloadEntry{{Address: "127.0.0.1", Ports: map[string]uint32{"http": 8080}}},
			},
		},
		{
			name: "workload entry",
			src: lines(
				"apiVersion: networking.istio.io/v1beta1",
				"kind: WorkloadEntry",
				"metadata: {name: vm-1}",
				"spec: {address: 127.0.0.2, labels: {app: legacy}, serviceAccount: legacy}",
			),
			got:  func(s *Set) proto.Message { return &s.WorkloadEntries[0].Spec },
			want: &networkingapi.WorkloadEntry{Address: "127.0.0.2", Labels: map[string]string{"app": "legacy"}, ServiceAccount: "legacy"},
		},
		{
			name: "sidecar limiting egress",
			src: lines(
				"apiVersion: networking.istio.io/v1alpha3",
				"kind: Sidecar",
				"metadata: {name: default, namespace: prod}",
				"spec:",
				"  egress: [{hosts: [./*, istio-system/*]}]",
			),
			got:  func(s *Set) proto.Message { return &s.Sidecars[0].Spec },
			want: &networkingapi.Sidecar{Egress: []*networkingapi.IstioEgressListener{{Hosts: []string{"./*", "istio-system/*"}}}},
		},
		{
			name: "mesh-wide STRICT mTLS",
			src: lines(
				"apiVersion: security.istio.io/v1",
				"kind: PeerAuthentication",
				"metadata: {name: default, namespace: istio-system}",
				"spec:",
				"  mtls: {mode: STRICT}",
			),
			got:  func(s *Set) proto.Message { return &s.PeerAuthentications[0].Spec },
			want: &securityapi.PeerAuthentication{Mtls: &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT}},
		},
		{
			name: "port-level mTLS",
			src: lines(
				"apiVersion: security.istio.io/v1beta1",
				"kind: PeerAuthentication",
				"metadata: {name: reviews}",
				"spec:",
				"  selector: {matchLabels: {app: reviews}}",
				"  mtls: {mode: STRICT}",
				"  portLevelMtls:",
				"    8080: {mode: DISABLE}",
				"    \"9080\": {mode: 2}",
			),
			got: func(s *Set) proto.Message { return &s.PeerAuthentications[0].Spec },
			want: &securityapi.PeerAuthentication{
				Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews"}},
				Mtls:     &securityapi.PeerAuthentication_MutualTLS{Mode: securityapi.PeerAuthentication_MutualTLS_STRICT},
				PortLevelMtls: map[uint32]*securityapi.PeerAuthentication_MutualTLS{
					8080: {Mode: securityapi.PeerAuthentication_MutualTLS_DISABLE},
					9080: {Mode: securityapi.PeerAuthentication_MutualTLS_PERMISSIVE},
				},
			},
		},
		{
			name: "authorization policy with from, to and when",
			src: lines(
				"apiVersion: security.istio.io/v1",
				"kind: AuthorizationPolicy",
				"metadata: {name: httpbin, namespace: foo}",
				"spec:",
				"  selector: {matchLabels: {app: httpbin}}",
				"  action: ALLOW",
				"  rules:",
				"  - from:",
				"    - source:",
				"        principals: [cluster.local/ns/default/sa/sleep]",
				"    - source: {namespaces: [dev]}",
				"    to:",
				"    - operation: {methods: [GET], paths: [/info*], notPaths: [/info/admin]}",
				"    when:",
				"    - key: request.auth.claims[iss]",
				"      values: [\"https://accounts.example.com\"]",
			),
			got: func(s *Set) proto.Message { return &s.AuthorizationPolicies[0].Spec },
			want: &securityapi.AuthorizationPolicy{
				Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "httpbin"}},
				Action:   securityapi.AuthorizationPolicy_ALLOW,
				Rules: []*securityapi.Rule{{
					From: []*securityapi.Rule_From{
						{Source: &securityapi.Source{Principals: []string{"cluster.local/ns/default/sa/sleep"}}},
						{Source: &securityapi.Source{Namespaces: []string{"dev"}}},
					},
					To: []*securityapi.Rule_To{{Operation: &securityapi.Operation{
						Methods: []string{"GET"}, Paths: []string{"/info*"}, NotPaths: []string{"/info/admin"},
					}}},
					When: []*securityapi.Condition{{Key: "request.auth.claims[iss]", Values: []string{"https://accounts.example.com"}}},
				}},
			},
		},
		{
			name: "request authentication with JWT rules",
			src: lines(
				"apiVersion: security.istio.io/v1",
				"kind: RequestAuthentication",
				"metadata: {name: jwt, namespace: foo}",
				"spec:",
				"  selector: {matchLabels: {app: httpbin}}",
				"  jwtRules:",
				"  - issuer: testing@secure.istio.io",
				"    jwksUri: https://auth.example.com/jwks.json",
				"    audiences: [httpbin]",
				"    forwardOriginalToken: true",
				"    fromHeaders: [{name: x-jwt, prefix: \"Bearer \"}]",
				"    outputClaimToHeaders: [{header: x-sub, claim: sub}]",
			),
			got: func(s *Set) proto.Message { return &s.RequestAuthentications[0].Spec },
			want: &securityapi.RequestAuthentication{
				Selector: &typeapi.WorkloadSelector{MatchLabels: map[string]string{"app": "httpbin"}},
				JwtRules: []*securityapi.JWTRule{{
					Issuer:               "testing@secure.istio.io",
					JwksUri:              "https://auth.example.com/jwks.json",
					Audiences:            []string{"httpbin"},
					ForwardOriginalToken: true,
					FromHeaders:          []*securityapi.JWTHeader{{Name: "x-jwt", Prefix: "Bearer "}},
					OutputClaimToHeaders: []*securityapi.ClaimToHeader{{Header: "x-sub", Claim: "sub"}},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseOne(t, tt.src)
			if diff := cmp.Diff(tt.want, tt.got(set), protocmp.Transform()); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}
