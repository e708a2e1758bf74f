package config

import (
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Istio kinds hold their upstream Go types (istio.io/client-go), whose Spec is an
// istio.io/api protobuf message. Whatever apiVersion a document spells
// (networking.istio.io/v1, v1beta1 or v1alpha3; security.istio.io/v1 or v1beta1), it is
// decoded into the v1 type: the schemas are the same. TypeMeta keeps the spelling.

// Istio's API groups and the apiVersions accepted for each.
const (
	IstioNetworkingGroup = "networking.istio.io"
	IstioSecurityGroup   = "security.istio.io"
)

var (
	istioNetworkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	istioSecurityVersions   = []string{"v1", "v1beta1"}
)

// VirtualService is a decoded and checked Istio VirtualService document.
type VirtualService struct {
	Pos Position
	*networkingv1.VirtualService
}

// DestinationRule is a decoded and checked Istio DestinationRule document.
type DestinationRule struct {
	Pos Position
	*networkingv1.DestinationRule
}

// ServiceEntry is a decoded and checked Istio ServiceEntry document.
type ServiceEntry struct {
	Pos Position
	*networkingv1.ServiceEntry
}

// WorkloadEntry is a decoded and checked Istio WorkloadEntry document.
type WorkloadEntry struct {
	Pos Position
	*networkingv1.WorkloadEntry
}

// Sidecar is a decoded and checked Istio Sidecar document.
type Sidecar struct {
	Pos Position
	*networkingv1.Sidecar
}

// PeerAuthentication is a decoded and checked Istio PeerAuthentication document.
type PeerAuthentication struct {
	Pos Position
	*securityv1.PeerAuthentication
}

// AuthorizationPolicy is a decoded and checked Istio AuthorizationPolicy document.
type AuthorizationPolicy struct {
	Pos Position
	*securityv1.AuthorizationPolicy
}

// RequestAuthentication is a decoded and checked Istio RequestAuthentication document.
type RequestAuthentication struct {
	Pos Position
	*securityv1.RequestAuthentication
}

func (o VirtualService) ref() ObjectRef  { return refOf("VirtualService", &o.ObjectMeta, o.Pos) }
func (o DestinationRule) ref() ObjectRef { return refOf("DestinationRule", &o.ObjectMeta, o.Pos) }
func (o ServiceEntry) ref() ObjectRef    { return refOf("ServiceEntry", &o.ObjectMeta, o.Pos) }
func (o WorkloadEntry) ref() ObjectRef   { return refOf("WorkloadEntry", &o.ObjectMeta, o.Pos) }
func (o Sidecar) ref() ObjectRef         { return refOf("Sidecar", &o.ObjectMeta, o.Pos) }
func (o PeerAuthentication) ref() ObjectRef {
	return refOf("PeerAuthentication", &o.ObjectMeta, o.Pos)
}
func (o AuthorizationPolicy) ref() ObjectRef {
	return refOf("AuthorizationPolicy", &o.ObjectMeta, o.Pos)
}
func (o RequestAuthentication) ref() ObjectRef {
	return refOf("RequestAuthentication", &o.ObjectMeta, o.Pos)
}

func refOf(kind string, m *metav1.ObjectMeta, pos Position) ObjectRef {
	return ObjectRef{Kind: kind, Namespace: m.Namespace, Name: m.Name, Pos: pos}
}

// istioKinds are the decodeFuncs of the Istio kinds, by kind, for each apiVersion.
func istioKinds() map[typeKey]decodeFunc {
	networking := map[string]decodeFunc{
		"VirtualService": decodeObject(validateVirtualService, func(s *Set, p Position, o *networkingv1.VirtualService) {
			s.VirtualServices = append(s.VirtualServices, VirtualService{p, o})
		}),
		"DestinationRule": decodeObject(validateDestinationRule, func(s *Set, p Position, o *networkingv1.DestinationRule) {
			s.DestinationRules = append(s.DestinationRules, DestinationRule{p, o})
		}),
		"ServiceEntry": decodeObject(validateServiceEntry, func(s *Set, p Position, o *networkingv1.ServiceEntry) {
			s.ServiceEntries = append(s.ServiceEntries, ServiceEntry{p, o})
		}),
		"WorkloadEntry": decodeObject(nil, func(s *Set, p Position, o *networkingv1.WorkloadEntry) {
			s.WorkloadEntries = append(s.WorkloadEntries, WorkloadEntry{p, o})
		}),
		"Sidecar": decodeObject(validateSidecar, func(s *Set, p Position, o *networkingv1.Sidecar) {
			s.Sidecars = append(s.Sidecars, Sidecar{p, o})
		}),
	}
	security := map[string]decodeFunc{
		"PeerAuthentication": decodeObject(validatePeerAuthentication, func(s *Set, p Position, o *securityv1.PeerAuthentication) {
			s.PeerAuthentications = append(s.PeerAuthentications, PeerAuthentication{p, o})
		}),
		"AuthorizationPolicy": decodeObject(validateAuthorizationPolicy, func(s *Set, p Position, o *securityv1.AuthorizationPolicy) {
			s.AuthorizationPolicies = append(s.AuthorizationPolicies, AuthorizationPolicy{p, o})
		}),
		"RequestAuthentication": decodeObject(validateRequestAuthentication, func(s *Set, p Position, o *securityv1.RequestAuthentication) {
			s.RequestAuthentications = append(s.RequestAuthentications, RequestAuthentication{p, o})
		}),
	}
	out := map[typeKey]decodeFunc{}
	addVersions(out, IstioNetworkingGroup, istioNetworkingVersions, networking)
	addVersions(out, IstioSecurityGroup, istioSecurityVersions, security)
	return out
}

// validateVirtualService checks what is cheap and certain: hosts, that every HTTP
// route goes somewhere, destinations with a host, weights and percentages in range.
func validateVirtualService(d *document, vs *networkingv1.VirtualService) {
	spec := field("spec")
	if len(vs.Spec.GetHosts()) == 0 {
		d.errorf(spec.key("hosts"), "required: at least one host (delegate VirtualServices, which have none, are not supported)")
	}
	for i, h := range vs.Spec.GetHttp() {
		p := spec.key("http").index(i)
		if len(h.GetRoute()) == 0 && h.GetRedirect() == nil && h.GetDirectResponse() == nil {
			d.errorf(p, "an HTTP route needs a route, a redirect or a directResponse")
		}
		for j, r := range h.GetRoute() {
			validateDestination(d, p.key("route").index(j), r.GetDestination(), r.GetWeight())
		}
		validatePercent(d, p.key("fault").key("delay").key("percentage"), h.GetFault().GetDelay().GetPercentage())
		validatePercent(d, p.key("fault").key("abort").key("percentage"), h.GetFault().GetAbort().GetPercentage())
		validatePercent(d, p.key("mirrorPercentage"), h.GetMirrorPercentage())
	}
	for i, t := range vs.Spec.GetTcp() {
		p := spec.key("tcp").index(i)
		if len(t.GetRoute()) == 0 {
			d.errorf(p.key("route"), "required: a TCP route needs at least one destination")
		}
		for j, r := range t.GetRoute() {
			validateDestination(d, p.key("route").index(j), r.GetDestination(), r.GetWeight())
		}
	}
	validateExportTo(d, spec.key("exportTo"), vs.Spec.GetExportTo())
	checkVirtualServiceRoutes(d, vs) // routecheck.go
}

func validateDestination(d *document, p fieldPath, dest *networkingapi.Destination, weight int32) {
	if dest.GetHost() == "" {
		d.errorf(p.key("destination").key("host"), "required")
	}
	if weight < 0 || weight > 100 {
		d.errorf(p.key("weight"), "weight %d is out of range 0..100", weight)
	}
	if port := dest.GetPort().GetNumber(); port > 65535 {
		d.errorf(p.key("destination").key("port").key("number"), "port %d is out of range 1..65535", port)
	}
}

func validatePercent(d *document, p fieldPath, pct *networkingapi.Percent) {
	if v := pct.GetValue(); v < 0 || v > 100 {
		d.errorf(p.key("value"), "percentage %g is out of range 0..100", v)
	}
}

func validateDestinationRule(d *document, dr *networkingv1.DestinationRule) {
	spec := field("spec")
	if dr.Spec.GetHost() == "" {
		d.errorf(spec.key("host"), "required")
	}
	subsets := map[string]int{}
	for i, s := range dr.Spec.GetSubsets() {
		p := spec.key("subsets").index(i)
		if s.GetName() == "" {
			d.errorf(p.key("name"), "required")
			continue
		}
		if first, dup := subsets[s.GetName()]; dup {
			d.errorf(p.key("name"), "duplicate subset name %q (also subsets[%d])", s.GetName(), first)
		}
		subsets[s.GetName()] = i
	}
	validateExportTo(d, spec.key("exportTo"), dr.Spec.GetExportTo())
}

func validateServiceEntry(d *document, se *networkingv1.ServiceEntry) {
	spec := field("spec")
	if len(se.Spec.GetHosts()) == 0 {
		d.errorf(spec.key("hosts"), "required: at least one host")
	}
	for i, port := range se.Spec.GetPorts() {
		p := spec.key("ports").index(i)
		if n := port.GetNumber(); n < 1 || n > 65535 {
			d.errorf(p.key("number"), "port %d is out of range 1..65535", n)
		}
		if t := port.GetTargetPort(); t > 65535 {
			d.errorf(p.key("targetPort"), "port %d is out of range 1..65535", t)
		}
	}
	validateExportTo(d, spec.key("exportTo"), se.Spec.GetExportTo())
}

func validatePeerAuthentication(d *document, pa *securityv1.PeerAuthentication) {
	spec := field("spec")
	if len(pa.Spec.GetPortLevelMtls()) > 0 && len(pa.Spec.GetSelector().GetMatchLabels()) == 0 {
		d.errorf(spec.key("portLevelMtls"), "needs a workload selector: port-level settings apply to the ports of selected workloads")
	}
	for _, port := range sortedKeysOf(pa.Spec.GetPortLevelMtls()) {
		if port < 1 || port > 65535 {
			d.errorf(spec.key("portLevelMtls").key(uintKey(port)), "port %d is out of range 1..65535", port)
		}
	}
}

func validateAuthorizationPolicy(d *document, ap *securityv1.AuthorizationPolicy) {
	spec := field("spec")
	custom := ap.Spec.GetAction() == securityapi.AuthorizationPolicy_CUSTOM
	switch {
	case custom && ap.Spec.GetProvider() == nil:
		d.errorf(spec.key("provider"), "required: a CUSTOM policy names its external authorizer")
	case !custom && ap.Spec.GetProvider() != nil:
		d.errorf(spec.key("provider"), "only a CUSTOM policy has a provider")
	}
	validatePolicyScope(d, ap.Spec.GetSelector() != nil, ap.Spec.GetTargetRef() != nil, len(ap.Spec.GetTargetRefs()) > 0)
}

func validateRequestAuthentication(d *document, ra *securityv1.RequestAuthentication) {
	spec := field("spec")
	for i, r := range ra.Spec.GetJwtRules() {
		if r.GetIssuer() == "" {
			d.errorf(spec.key("jwtRules").index(i).key("issuer"), "required")
		}
	}
	validatePolicyScope(d, ra.Spec.GetSelector() != nil, ra.Spec.GetTargetRef() != nil, len(ra.Spec.GetTargetRefs()) > 0)
}

// validatePolicyScope checks that a policy names its workloads one way only.
func validatePolicyScope(d *document, selector, targetRef, targetRefs bool) {
	spec := field("spec")
	if selector && (targetRef || targetRefs) {
		d.errorf(spec.key("selector"), "selector and targetRef(s) cannot both be set")
	}
	if targetRef && targetRefs {
		d.errorf(spec.key("targetRef"), "targetRef and targetRefs cannot both be set")
	}
}
