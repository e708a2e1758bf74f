// Package v1alpha1 holds the Go types of the trellis.dev/v1alpha1 API group: the
// kinds Trellis adds to the Istio and Gateway API kinds it reads.
//
// The struct fields' comments are the reference users read; keep them true.
package v1alpha1
