package model

import (
	"slices"

	networkingapi "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/identity"
)

// TLSMode is how a client sidecar connects to a cluster's endpoints: a
// DestinationRule's trafficPolicy.tls.mode, or what auto mTLS chose.
type TLSMode string

// The client TLS modes (Istio's ClientTLSSettings.TLSmode).
const (
	// TLSDisable: plaintext.
	TLSDisable TLSMode = "DISABLE"
	// TLSIstioMutual: the mesh's mutual TLS, with the sidecar's own certificate and
	// the mesh's trust bundle, checking the server's SPIFFE ID.
	TLSIstioMutual TLSMode = "ISTIO_MUTUAL"
	// TLSSimple: TLS to a server outside the mesh, verified against CA files.
	TLSSimple TLSMode = "SIMPLE"
	// TLSMutual: TLS with a client certificate from files.
	TLSMutual TLSMode = "MUTUAL"
)

// ClientTLS is a DestinationRule's trafficPolicy.tls.
type ClientTLS struct {
	Mode TLSMode `json:"mode"`
	// ClientCertificate and PrivateKey are files (MUTUAL).
	ClientCertificate string `json:"clientCertificate,omitempty"`
	PrivateKey        string `json:"privateKey,omitempty"`
	// CACertificates is a file of roots that verify the server (SIMPLE, MUTUAL);
	// empty: the system's roots.
	CACertificates string `json:"caCertificates,omitempty"`
	// SubjectAltNames are the names the server's certificate must carry (one of).
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
	// SNI is the server name sent; empty: the service's host.
	SNI string `json:"sni,omitempty"`
	// InsecureSkipVerify skips verifying the server.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// clientTLS converts a DestinationRule's tls settings; nil for nil or no mode.
func clientTLS(t *networkingapi.ClientTLSSettings) *ClientTLS {
	if t == nil {
		return nil
	}
	out := &ClientTLS{
		ClientCertificate:  t.GetClientCertificate(),
		PrivateKey:         t.GetPrivateKey(),
		CACertificates:     t.GetCaCertificates(),
		SubjectAltNames:    t.GetSubjectAltNames(),
		SNI:                t.GetSni(),
		InsecureSkipVerify: t.GetInsecureSkipVerify().GetValue(),
	}
	switch t.GetMode() {
	case networkingapi.ClientTLSSettings_ISTIO_MUTUAL:
		out.Mode = TLSIstioMutual
	case networkingapi.ClientTLSSettings_SIMPLE:
		out.Mode = TLSSimple
	case networkingapi.ClientTLSSettings_MUTUAL:
		out.Mode = TLSMutual
	default:
		out.Mode = TLSDisable
	}
	return out
}

// ClusterTLS is how a client sidecar secures the connections of one cluster.
type ClusterTLS struct {
	Mode TLSMode `json:"mode"`
	// Identities are the SPIFFE IDs the server may present (ISTIO_MUTUAL), sorted;
	// empty: any identity of TrustDomain.
	Identities []string `json:"identities,omitempty"`
	// TrustDomain is the mesh's trust domain.
	TrustDomain string `json:"trustDomain,omitempty"`
	// Settings are the DestinationRule's (SIMPLE, MUTUAL); nil for ISTIO_MUTUAL.
	Settings *ClientTLS `json:"settings,omitempty"`
	// Auto is true when no DestinationRule chose the mode (auto mTLS).
	Auto bool `json:"auto,omitempty"`
}

// clusterTLS decides how a cluster's connections are secured; nil: plaintext.
//   - A DestinationRule's tls decides when it sets one.
//   - Else ServiceEntry hosts are plaintext, and services backed by sidecars use
//     ISTIO_MUTUAL unless every endpoint's port is in mode DISABLE.
func (m *Mesh) clusterTLS(svc *Service, subset *Subset, policy *TrafficPolicy, endpoints []Endpoint) *ClusterTLS {
	if policy != nil && policy.TLS != nil {
		switch policy.TLS.Mode {
		case TLSDisable:
			return nil
		case TLSIstioMutual:
			return m.meshTLS(svc, subset, endpoints, false)
		default:
			return &ClusterTLS{Mode: policy.TLS.Mode, Settings: policy.TLS}
		}
	}
	if svc.Origin == OriginServiceEntry {
		return nil
	}
	disabled := 0
	for _, ep := range endpoints {
		if ep.MTLS == MTLSDisable {
			disabled++
		}
	}
	if len(endpoints) > 0 && disabled == len(endpoints) {
		return nil
	}
	return m.meshTLS(svc, subset, endpoints, true)
}

// meshTLS is ISTIO_MUTUAL toward the identities behind a cluster: those of its
// endpoints and of the Workloads declared in config that back the service (and
// match the subset's labels).
func (m *Mesh) meshTLS(svc *Service, subset *Subset, endpoints []Endpoint, auto bool) *ClusterTLS {
	var ids []string
	for _, ep := range endpoints {
		if ep.Identity != "" {
			ids = append(ids, ep.Identity)
		}
	}
	ids = append(ids, svc.SubjectAltNames...)
	var sel labels.Selector = labels.Everything()
	if subset != nil {
		sel = labels.SelectorFromSet(subset.Labels)
	}
	for _, w := range svc.backers {
		if sel.Matches(labels.Set(w.labels)) {
			ids = append(ids, w.identity)
		}
	}
	slices.Sort(ids)
	return &ClusterTLS{Mode: TLSIstioMutual, Identities: slices.Compact(ids), TrustDomain: m.TrustDomain, Auto: auto}
}

// backer is a Workload declared in config that backs a service, whether or not its
// sidecar is connected.
type backer struct {
	labels   map[string]string
	identity string
}

// Identity is the SPIFFE ID of a workload in namespace running as serviceAccount
// ("default" if empty), in the mesh's trust domain.
func (m *Mesh) Identity(namespace, serviceAccount string) string {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	return identity.ID{TrustDomain: m.TrustDomain, Namespace: namespaceOr(namespace), ServiceAccount: serviceAccount}.String()
}
