// Package model is the control plane's intermediate representation (IR): the mesh's
// services, their ports and endpoints, and the view of one proxy, built from typed
// configuration and the registered workload instances.
//
// Data flow: config.Set (from the store) + []registry.Instance (from the xDS server)
// -> Build -> *Mesh -> xdsgen. A Mesh is derived, immutable once built, and shared by
// every proxy's generation; NewProxy turns an instance's bootstrap metadata into the
// Proxy that xdsgen generates for.
//
// Services come from:
//   - v1/Service documents: ports from spec.ports (protocol from appProtocol or the
//     port name, see config.ServicePortProtocol); endpoints are the registered
//     instances in the same namespace whose labels match spec.selector. A Service port
//     reaches, on each instance, the targetPort when it names or numbers one of the
//     instance's ports, else the port with the same name, else the same number.
//   - Workloads' spec.service (and registered instances' metadata.service): an
//     implicit service whose ports are the union of the declaring workloads' ports;
//     endpoints are the registered instances that declare it, on the same port number.
//
// When both define the same namespace/name, the v1/Service wins. A service's default
// port, the one a host name without a port reaches, is 80 if it has one, else its only
// HTTP-family port.
//
// Build is pure and deterministic: the same input gives the same Mesh, with every
// slice sorted. Problems that do not stop the build (conflicting port declarations)
// are collected in Mesh.Errors. The package holds no state and no locks.
package model
