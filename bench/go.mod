// tcpkit/bench holds the performance comparison (go run ./compare) and
// the servers it compares tcpkit with. It is a module of its own so that
// the tcpkit module, library and CLI, never depends on gnet or anything
// else only the comparison needs: users of tcpkit download none of it.
module tcpkit/bench

go 1.26.0

require (
	github.com/panjf2000/gnet/v2 v2.9.7
	golang.org/x/sys v0.30.0
)

require (
	github.com/panjf2000/ants/v2 v2.11.3 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/sync v0.11.0 // indirect
	gopkg.in/natefinch/lumberjack.v2 v2.2.1 // indirect
)
