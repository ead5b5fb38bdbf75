//go:build !linux

package inventory

func kernelRelease() string { return "" }
