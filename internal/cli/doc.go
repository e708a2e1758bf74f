// Package cli is the trellis command line: one cobra command per verb, each parsing its
// flags into a component's Config and calling that component. No logic lives here.
package cli
