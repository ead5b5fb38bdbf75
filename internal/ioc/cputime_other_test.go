//go:build !linux

package ioc

import "testing"

type cpuMeter struct{}

func startCPU(b *testing.B) *cpuMeter            { return &cpuMeter{} }
func (m *cpuMeter) report(b *testing.B, ops int) {}

func anonHugeMiB() float64 { return 0 }
