package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// evictPageCache drops the file's pages from the page cache (it flushes them first),
// so that the processes started from it read it from disk, as an installed binary is
// read.
//
// Why: a binary the linker or a copy has just written sits in the page cache in the
// large blocks it was written in, and on this kernel a process that touches one page
// of such a block maps far more of it: a freshly built sidecar's file-backed RSS
// measured 34-44 MiB where the same binary read back from disk measured 12-20 MiB,
// same code, same load (docs/benchmarks.md, "How CPU and memory are read"). Pages
// that a running process maps are not dropped, so call it before the first start.
func evictPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("evicting %s from the page cache: %w", path, err)
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("evicting %s from the page cache: fdatasync: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("evicting %s from the page cache: fadvise: %w", path, err)
	}
	return nil
}
