package watch

import "errors"

// Errors of OpenLive.
var (
	ErrPermission  = errors.New("watch: capturing packets needs root or CAP_NET_RAW")
	ErrNoInterface = errors.New("watch: no network interface")
	ErrUnsupported = errors.New("watch: live capture is supported on Linux only")
)
