//go:build !linux

package ioc

// adviseHuge does nothing where transparent huge pages cannot be asked for.
func adviseHuge[T any](s []T, collapse bool) {}
