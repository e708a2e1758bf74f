package model

import (
	"fmt"
	"strconv"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/names"
)

// RouteStatus is what the mesh makes of one Service parentRef of an HTTPRoute or
// GRPCRoute: the Gateway API's Accepted and ResolvedRefs conditions for
// status.parents[]. A Kubernetes writer (internal/kube/routestatus) publishes it.
type RouteStatus struct {
	// Kind is HTTPRoute or GRPCRoute; Namespace and Name the route's.
	Kind, Namespace, Name string
	// Parent is the parentRef as written in the route.
	Parent gatewayv1.ParentReference
	// Accepted: the parent exists and the route attached to at least one of its
	// ports. ResolvedRefs: every backendRef of the route names a Service that exists.
	Accepted, ResolvedRefs RouteCondition
}

// RouteCondition is one condition's status, reason and message.
type RouteCondition struct {
	OK      bool
	Reason  string
	Message string
}

// RouteStatuses computes the status of every Service parentRef of the routes, given
// the mesh built from them. Parents that are not Services (Gateways) are left out:
// they belong to another controller. Pure: it reads m and the routes only.
func RouteStatuses(m *Mesh, httpRoutes []config.HTTPRoute, grpcRoutes []config.GRPCRoute) []RouteStatus {
	var out []RouteStatus
	for _, hr := range httpRoutes {
		var refs []gatewayv1.BackendObjectReference
		for _, rule := range hr.Spec.Rules {
			for _, br := range rule.BackendRefs {
				refs = append(refs, br.BackendObjectReference)
			}
		}
		out = append(out, routeStatuses(m, "HTTPRoute", hr.ObjectMeta.Namespace, hr.ObjectMeta.Name, hr.Spec.ParentRefs, refs)...)
	}
	for _, gr := range grpcRoutes {
		var refs []gatewayv1.BackendObjectReference
		for _, rule := range gr.Spec.Rules {
			for _, br := range rule.BackendRefs {
				refs = append(refs, br.BackendObjectReference)
			}
		}
		out = append(out, routeStatuses(m, "GRPCRoute", gr.ObjectMeta.Namespace, gr.ObjectMeta.Name, gr.Spec.ParentRefs, refs)...)
	}
	return out
}

func routeStatuses(m *Mesh, kind, ns, name string, parents []gatewayv1.ParentReference, backends []gatewayv1.BackendObjectReference) []RouteStatus {
	resolved := resolvedRefs(m, ns, backends)
	var out []RouteStatus
	for _, ref := range parents {
		if !isCoreService(ref.Group, ref.Kind) {
			continue
		}
		out = append(out, RouteStatus{Kind: kind, Namespace: ns, Name: name,
			Parent: ref, Accepted: accepted(m, ns, ref), ResolvedRefs: resolved})
	}
	return out
}

// accepted follows gammaParents: the parent Service must exist and have a matching
// HTTP-family port that no VirtualService routes.
func accepted(m *Mesh, routeNS string, ref gatewayv1.ParentReference) RouteCondition {
	ns := routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	svc := m.Service(names.ServiceFQDN(string(ref.Name), ns))
	if svc == nil || svc.Origin == OriginServiceEntry {
		return RouteCondition{Reason: string(gatewayv1.RouteReasonNoMatchingParent), Message: fmt.Sprintf("no Service %s/%s", ns, ref.Name)}
	}
	var problems []string
	matched := false
	for _, p := range svc.Ports {
		if ref.Port != nil && uint32(*ref.Port) != p.Number {
			continue
		}
		if ref.SectionName != nil && string(*ref.SectionName) != p.Name {
			continue
		}
		matched = true
		switch {
		case !IsHTTP(p.Protocol):
			problems = append(problems, fmt.Sprintf("port %d is %s, not HTTP, HTTP2 or GRPC", p.Number, p.Protocol))
		case p.routedBy != "" && !strings.HasPrefix(p.routedBy, "HTTPRoute ") && !strings.HasPrefix(p.routedBy, "GRPCRoute "):
			problems = append(problems, fmt.Sprintf("port %d already has routes from %s", p.Number, p.routedBy))
		default:
			return RouteCondition{OK: true, Reason: string(gatewayv1.RouteReasonAccepted), Message: "attached to " + svc.FQDN}
		}
	}
	if !matched {
		return RouteCondition{Reason: string(gatewayv1.RouteReasonNoMatchingParent), Message: fmt.Sprintf("Service %s/%s has no such port", ns, ref.Name)}
	}
	return RouteCondition{Reason: string(gatewayv1.RouteReasonUnsupportedValue), Message: strings.Join(problems, "; ")}
}

// resolvedRefs checks every backendRef: a core Service that exists, with the port
// named if one is.
func resolvedRefs(m *Mesh, routeNS string, refs []gatewayv1.BackendObjectReference) RouteCondition {
	for _, ref := range refs {
		if !isCoreService(ref.Group, ref.Kind) {
			kind := "Service"
			if ref.Kind != nil {
				kind = string(*ref.Kind)
			}
			return RouteCondition{Reason: string(gatewayv1.RouteReasonInvalidKind), Message: "backendRef kind " + kind + " is not supported; only core Services are"}
		}
		ns := routeNS
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		svc := m.Service(names.ServiceFQDN(string(ref.Name), ns))
		if svc == nil {
			return RouteCondition{Reason: string(gatewayv1.RouteReasonBackendNotFound), Message: fmt.Sprintf("no Service %s/%s", ns, ref.Name)}
		}
		if ref.Port != nil && svc.Port(uint32(*ref.Port)) == nil {
			return RouteCondition{Reason: string(gatewayv1.RouteReasonBackendNotFound), Message: fmt.Sprintf("Service %s/%s has no port %s", ns, ref.Name, strconv.Itoa(int(*ref.Port)))}
		}
	}
	return RouteCondition{OK: true, Reason: string(gatewayv1.RouteReasonResolvedRefs), Message: "all backendRefs resolved"}
}
