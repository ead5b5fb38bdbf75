//go:build !linux

package dnsmon

import "context"

// Monitor captures DNS traffic. It is used by one goroutine.
type Monitor struct{ cfg Config }

// New returns a Monitor; on this system Run returns ErrUnsupported.
func New(cfg Config) *Monitor { return &Monitor{cfg: cfg} }

// Run returns ErrUnsupported.
func (m *Monitor) Run(ctx context.Context, h Handler) error { return ErrUnsupported }
