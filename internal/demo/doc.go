// Package demo is `trellis demo`: a small bookshop application built into the trellis
// binary, and the mesh file that runs it with `trellis up`.
//
// The application has the shape of Istio's Bookinfo, smaller: frontend calls details
// and reviews; reviews runs in two versions, and v2 calls ratings; loadgen sends the
// frontend steady traffic and prints a line of status codes and reviews versions
// every few seconds. Every role is `trellis demo-app <role>` (Handler, Load), listens
// on 127.0.0.1:$PORT and calls the others by service name through HTTP_PROXY, which
// `trellis up` points at the workload's sidecar: the apps know nothing of the mesh.
//
// Mesh is the embedded mesh file (demo.yaml; examples/demo/mesh.yaml is a copy kept
// equal by a test). Run writes it to a temporary directory, runs local.Run on it and
// prints Summary once every sidecar is ready.
package demo
