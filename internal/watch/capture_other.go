//go:build !linux

package watch

// Live is a live capture; on this system there is none.
type Live struct{}

// OpenLive returns ErrUnsupported: live capture uses Linux's AF_PACKET.
// Files (OpenFile) work everywhere.
func OpenLive(iface string, port uint16) (*Live, error) { return nil, ErrUnsupported }

// Next is never called: OpenLive returns no Live.
func (l *Live) Next() (Frame, error) { return Frame{}, ErrUnsupported }

// Drops is zero.
func (l *Live) Drops() uint64 { return 0 }

// Close does nothing.
func (l *Live) Close() error { return nil }

// Drain does nothing.
func (l *Live) Drain() {}
