// Package kubeobj turns the objects read from a Kubernetes API server into what the
// mesh reads: a custom resource into a mesh file's document (ConfigDocument), a
// Service into a config.Service (ConvertService), and a kind of install.Kinds into
// the version the API server serves (ServedVersion).
//
// It is shared by the readers of a cluster (internal/source/kube, internal/kube/check
// and the rate-limit service's watch) so that all of them decode an object the same
// way. It holds no state and starts no goroutines.
package kubeobj
