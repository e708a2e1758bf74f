// Package leader elects one leader among the control plane's replicas with a
// Kubernetes Lease (client-go's leaderelection), and runs the leader's duties while,
// and only while, the replica leads.
//
// Every replica serves xDS; only the leader does what must be done once: create the CA
// root Secret, keep the webhook configurations' caBundle current, write status.
// Elector.Run campaigns until its context ends. When the replica wins, Config.Lead
// runs with a context that ends when the lease is lost (it could not be renewed within
// RenewDeadline) or Run's context ends; after losing, Run campaigns again. On a
// graceful stop the lease is released, so another replica takes over within
// RetryPeriod; a replica that dies without releasing it is replaced after
// LeaseDuration.
//
// Concurrency: Run owns one goroutine that runs Lead, one term at a time, and returns
// only after it has returned. IsLeader and Leader may be called from any goroutine.
package leader
