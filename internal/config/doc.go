// Package config reads the mesh's configuration files: multi-document YAML holding
// Kubernetes-style resources, decoded into their upstream Go types, defaulted and
// validated, with the file and line of every object and of every problem. The kinds:
//
//   - trellis.dev/v1alpha1 Workload and v1 Service (core);
//   - Istio traffic management, networking.istio.io/v1 (also spelt v1beta1, v1alpha3):
//     VirtualService, DestinationRule, ServiceEntry, WorkloadEntry, Sidecar, as the
//     istio.io/client-go v1 types;
//   - Istio security, security.istio.io/v1 (also v1beta1): PeerAuthentication,
//     AuthorizationPolicy, RequestAuthentication;
//   - Gateway API routes, gateway.networking.k8s.io/v1: HTTPRoute (also v1beta1) and
//     GRPCRoute, as the sigs.k8s.io/gateway-api v1 types.
//
// docs/config.md is the user's page about them.
//
// # How a file is read
//
// Parse cuts a file into its "---" documents and parses each with gopkg.in/yaml.v3 into
// a node tree, which keeps line numbers. A document's apiVersion and kind select its
// decodeFunc in the kinds table (kinds.go); adding a kind is a type and a field in Set,
// a line in Set.lists (set.go) and an entry in that table, most often built by the
// generic decodeObject. The decodeFunc decodes the document into the kind's Go type:
// the node tree is walked against the type (converter, convert.go), which reports
// unknown and duplicate fields at any depth, wrongly typed and out-of-range values, and
// values that a self-decoding type (intstr.IntOrString, resource.Quantity, metav1.Time)
// rejects, each at its own line; the resulting JSON is then decoded by encoding/json.
//
// Two walks share the converter. Plain Go structs (Kubernetes and Gateway API types)
// are walked by reflection over their JSON struct tags, handling inline embedded
// structs, pointers, slices and maps. Protobuf messages (the Spec of every Istio kind,
// an istio.io/api message) are walked against their message descriptor with protojson's
// rules instead (protowalk.go): JSON or proto field names, enums by name or number,
// integers also as strings, oneofs set once, well-known types in their JSON form
// (durations, timestamps, wrappers, Struct). Durations may also be written as Go
// durations ("5m", "1h30m"), as Istio accepts, and are rewritten as seconds. A message's
// subtree that walked cleanly is then decoded by protojson, strictly, as a last check;
// the object itself is decoded by encoding/json, which hands the spec to the Istio
// type's UnmarshalJSON (golang/protobuf jsonpb), lenient on its own but given only
// what the walk and protojson accepted (TestSpecDecodedAsProtojson checks they agree).
//
// Defaults follow (namespace "default", serviceAccount "default", Workload port
// protocol HTTP, Service port protocol TCP and targetPort = port, and the defaults the
// Gateway API CRDs declare: parentRef group/kind, backendRef kind Service and weight 1,
// path match PathPrefix "/", header, query and gRPC method match type Exact), then
// validation: thorough for the Trellis kinds, light for the others (only what is cheap
// and certain, such as a VirtualService without hosts, a route weight outside 0..100 or
// an HTTPRoute without parentRefs); deeper checks belong to the translation.
//
// Every problem in a file is collected into an ErrorList; a file with any problem is
// rejected whole, so a half-valid file never reaches the mesh.
//
// # Sets
//
// A Set is the typed content of one or more files: one slice per kind, each element
// the object's upstream Go type (by pointer) and its Position, sorted by
// namespace/name. Set.lists enumerates the slices, so Objects, Merge, Combine and
// sorting cover every kind alike. Combine merges Sets and reports objects (kind,
// namespace, name; whatever apiVersion spelt them) defined twice, keeping the first;
// LoadFiles and the config store use it. The store compares Sets by their JSON
// encoding, which is deterministic for every kind (protobuf maps are written sorted). Sets are values passed around by pointer and shared: nothing in
// this package mutates a Set after it is returned.
//
// Nothing here is concurrent; the package keeps only a cache of struct field tables
// (a sync.Map) and is safe to use from many goroutines.
package config
