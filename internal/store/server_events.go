package store

import "context"

// AddServerEvent stores one event the server raises about a device (Source
// EventFromServer, seq 0), such as a failed attestation.
func (s *Store) AddServerEvent(ctx context.Context, e Event) error {
	e.Source, e.Seq = EventFromServer, 0
	return s.AddServerEvents(ctx, []Event{e})
}
