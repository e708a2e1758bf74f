// Package analyze checks mesh files the way the control plane would read them and
// reports everything that would not be in force, with file and line: documents
// config rejects, objects defined twice, traffic rules the model cannot apply
// (a destination naming no service, a subset no DestinationRule defines, ...),
// and fields of VirtualService, DestinationRule, ServiceEntry, HTTPRoute and
// GRPCRoute that Trellis does not implement (model.Unsupported). `trellis analyze`
// prints its Result; the control plane logs the same problems.
//
// Data flow: files -> config.ParseFile -> config.Combine -> model.Build (no sidecars
// registered) -> Result. The model knows a problem's resource and field path but
// only the document's line (config keeps no per-field positions); Locator re-reads
// the file and walks the YAML to the field's own line.
//
// Nothing here is concurrent; a Locator is used by one goroutine at a time.
package analyze
