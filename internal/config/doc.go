// Package config reads the mesh's configuration files: multi-document YAML holding
// Kubernetes-style resources (trellis.dev/v1alpha1 Workload, v1 Service), decoded into
// the upstream Go types, defaulted and validated, with the file and line of every
// object and of every problem.
//
// # How a file is read
//
// Parse cuts a file into its "---" documents and parses each with gopkg.in/yaml.v3 into
// a node tree, which keeps line numbers. A document's apiVersion and kind select its
// decodeFunc in the kinds table (parse.go); that is the extension point for the kinds
// still to come (Istio networking and security, Gateway API routes, more Trellis kinds).
// The decodeFunc decodes the document into the kind's Go type: the node tree is walked
// against the type's JSON fields by reflection (converter, convert.go), which reports
// unknown and duplicate fields at any depth, wrongly typed and out-of-range values, and
// values that a self-decoding type (intstr.IntOrString, resource.Quantity, metav1.Time)
// rejects, each at its own line; the resulting JSON is then decoded by encoding/json.
// Defaults follow (namespace "default", serviceAccount "default", Workload port
// protocol HTTP, Service port protocol TCP and targetPort = port), then validation.
//
// Every problem in a file is collected into an ErrorList; a file with any problem is
// rejected whole, so a half-valid file never reaches the mesh.
//
// # Sets
//
// A Set is the typed content of one or more files, sorted by namespace/name. Combine
// merges Sets and reports objects defined twice (keeping the first); LoadFiles and the
// config store use it. Sets are values passed around by pointer and shared: nothing in
// this package mutates a Set after it is returned.
//
// Nothing here is concurrent; the package keeps only a cache of struct field tables
// (a sync.Map) and is safe to use from many goroutines.
package config
