package install

import (
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Kind is a custom resource kind Trellis reads and installs a CRD for.
type Kind struct {
	Group, Kind, Plural string
	// ShortNames as kubectl knows them (vs, dr, ...), the same as Istio's.
	ShortNames []string
	// Versions served, the storage version first.
	Versions []string
	// Categories kubectl get accepts for the kind.
	Categories []string
	// Status says whether the kind has a status subresource.
	Status bool
}

// The API groups of the kinds.
const (
	IstioNetworkingGroup = "networking.istio.io"
	IstioSecurityGroup   = "security.istio.io"
	GatewayGroup         = "gateway.networking.k8s.io"
	TrellisGroup         = "trellis.dev"
)

var (
	istioNetworkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	istioSecurityVersions   = []string{"v1", "v1beta1"}
	istioNetworkingCats     = []string{"istio-io", "networking-istio-io"}
	istioSecurityCats       = []string{"istio-io", "security-istio-io"}
)

// Kinds is every custom resource kind Trellis reads, in install order: Istio
// networking and security, Gateway API routes (installed only where absent), and
// Trellis's own.
func Kinds() []Kind {
	return []Kind{
		{Group: IstioNetworkingGroup, Kind: "VirtualService", Plural: "virtualservices", ShortNames: []string{"vs"}, Versions: istioNetworkingVersions, Categories: istioNetworkingCats, Status: true},
		{Group: IstioNetworkingGroup, Kind: "DestinationRule", Plural: "destinationrules", ShortNames: []string{"dr"}, Versions: istioNetworkingVersions, Categories: istioNetworkingCats, Status: true},
		{Group: IstioNetworkingGroup, Kind: "ServiceEntry", Plural: "serviceentries", ShortNames: []string{"se"}, Versions: istioNetworkingVersions, Categories: istioNetworkingCats, Status: true},
		{Group: IstioNetworkingGroup, Kind: "WorkloadEntry", Plural: "workloadentries", ShortNames: []string{"we"}, Versions: istioNetworkingVersions, Categories: istioNetworkingCats, Status: true},
		{Group: IstioNetworkingGroup, Kind: "Sidecar", Plural: "sidecars", Versions: istioNetworkingVersions, Categories: istioNetworkingCats, Status: true},
		{Group: IstioSecurityGroup, Kind: "PeerAuthentication", Plural: "peerauthentications", ShortNames: []string{"pa"}, Versions: istioSecurityVersions, Categories: istioSecurityCats, Status: true},
		{Group: IstioSecurityGroup, Kind: "AuthorizationPolicy", Plural: "authorizationpolicies", ShortNames: []string{"ap"}, Versions: istioSecurityVersions, Categories: istioSecurityCats, Status: true},
		{Group: IstioSecurityGroup, Kind: "RequestAuthentication", Plural: "requestauthentications", ShortNames: []string{"ra"}, Versions: istioSecurityVersions, Categories: istioSecurityCats, Status: true},
		{Group: GatewayGroup, Kind: "HTTPRoute", Plural: "httproutes", Versions: []string{"v1", "v1beta1"}, Categories: []string{"gateway-api"}, Status: true},
		{Group: GatewayGroup, Kind: "GRPCRoute", Plural: "grpcroutes", Versions: []string{"v1"}, Categories: []string{"gateway-api"}, Status: true},
		{Group: TrellisGroup, Kind: "Workload", Plural: "workloads", Versions: []string{"v1alpha1"}, Categories: []string{"trellis"}, Status: false},
		{Group: TrellisGroup, Kind: "RateLimitPolicy", Plural: "ratelimitpolicies", Versions: []string{"v1alpha1"}, Categories: []string{"trellis"}, Status: false},
	}
}

// CRDName is the CustomResourceDefinition's name: <plural>.<group>.
func (k Kind) CRDName() string { return k.Plural + "." + k.Group }

// CRD is the kind's CustomResourceDefinition. Its schema is structural but open
// (x-kubernetes-preserve-unknown-fields): the objects are checked strictly, with the
// upstream Go types, by the validating webhook (internal/kube/webhook), rather than by
// an OpenAPI schema copied from upstream. Every version has the same schema, so no
// conversion is needed.
func (k Kind) CRD() *apiextensionsv1.CustomResourceDefinition {
	crd := &apiextensionsv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   k.CRDName(),
			Labels: commonLabels(),
		},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: k.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind:       k.Kind,
				ListKind:   k.Kind + "List",
				Plural:     k.Plural,
				Singular:   strings.ToLower(k.Kind),
				ShortNames: slices.Clone(k.ShortNames),
				Categories: slices.Clone(k.Categories),
			},
			Scope: apiextensionsv1.NamespaceScoped,
		},
	}
	if protectedGroup(k.Group) {
		// The API server wants an approval for *.k8s.io groups; these are not the
		// Gateway API project's reviewed CRDs but open copies, and say so.
		crd.Annotations = map[string]string{
			"api-approved.kubernetes.io": "unapproved, schemaless " + k.Group + " CRD installed by Trellis where none was; install the Gateway API's own CRDs for its schemas",
		}
	}
	for i, v := range k.Versions {
		ver := apiextensionsv1.CustomResourceDefinitionVersion{
			Name:    v,
			Served:  true,
			Storage: i == 0,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type:                   "object",
				Description:            k.Kind + " of " + k.Group + "; validated by the Trellis validating webhook.",
				XPreserveUnknownFields: ptr.To(true),
			}},
		}
		if k.Status {
			ver.Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
		}
		crd.Spec.Versions = append(crd.Spec.Versions, ver)
	}
	return crd
}

// CRDs are the CustomResourceDefinitions of every kind in Kinds.
func CRDs() []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, k := range Kinds() {
		out = append(out, k.CRD())
	}
	return out
}

// protectedGroup says whether the API server requires an api-approved.kubernetes.io
// annotation on the group's CRDs.
func protectedGroup(g string) bool {
	return g == "k8s.io" || g == "kubernetes.io" || strings.HasSuffix(g, ".k8s.io") || strings.HasSuffix(g, ".kubernetes.io")
}
