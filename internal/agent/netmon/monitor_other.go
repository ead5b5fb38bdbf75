//go:build !linux

package netmon

import "context"

// Monitor polls the socket tables and reports new flows.
type Monitor struct{ cfg Config }

// New returns a Monitor; on this system its methods return ErrUnsupported.
func New(cfg Config) *Monitor { return &Monitor{cfg: cfg} }

// Backend reports the backend the last poll used.
func (m *Monitor) Backend() Backend { return "" }

// Run returns ErrUnsupported.
func (m *Monitor) Run(ctx context.Context, emit func(Flow)) error { return ErrUnsupported }

// Poll returns ErrUnsupported.
func (m *Monitor) Poll() ([]Flow, error) { return nil, ErrUnsupported }
