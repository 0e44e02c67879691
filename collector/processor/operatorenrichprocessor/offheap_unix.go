//go:build unix

package operatorenrichprocessor

import "syscall"

// mapAnon maps size bytes of zeroed private memory; nil if it cannot.
func mapAnon(size int) []byte {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return b
}

func unmapAnon(b []byte) { _ = syscall.Munmap(b) }
