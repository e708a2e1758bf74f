// Package binpages releases the sidecar's resident pages of its own executable that
// only start-up needed.
//
// The sidecar is the one trellis binary, which also holds the control plane and the
// CLI. Starting it runs every linked package's initialisation (protobuf descriptor
// registration, Kubernetes API schemes, ...), which touches tens of MiB of the
// binary's code and read-only data (Go's pclntab, type data, descriptors) that the
// sidecar never touches again; the kernel maps them on the first touch, a 64 KiB
// window at a time (fault-around), and they stay counted in the process's RSS
// (RssFile) for its whole life.
//
// Release, called once the sidecar is serving, gives those pages back with
// madvise(MADV_DONTNEED) on the executable's read-only private mappings. For such a
// mapping the call only unmaps the pages from this process: they are clean copies of
// the file, stay in the page cache (shared with every process that maps the binary),
// and the next touch of one maps it again with a minor fault, no disk read when the
// page cache still holds it. What the sidecar keeps using comes back within its first
// requests; what only start-up used does not.
//
// Safety: Release reads /proc/self/smaps and releases only mappings of the file that
// holds its own code (the executable) that are private, not writable, and have no
// anonymous page (a page written to, such as a relocation or a debugger's
// breakpoint, would be lost and read again from the file). Writable mappings (the
// binary's data and bss) and all other memory are never touched. Nothing in the Go
// runtime writes or locks the executable's read-only mappings, so no such page can
// appear between the read and the madvise. A binary overwritten in place while it
// runs (newer kernels no longer refuse it with ETXTBSY) breaks the process with or
// without a release, since a private file mapping shares the page cache until a page
// is written; the release only means more pages are read again.
//
// The cost is in docs/benchmarks.md ("Sidecar memory"): the re-faults of the pages
// the sidecar does use, once, and of pages touched only by rare work (a
// configuration change parses protobufs with code start-up had mapped) when that work
// comes.
package binpages
