package tcpkit

import (
	"context"
	"fmt"
	"testing"
)

// Dialer.Engine picks what a dialed connection runs on; the zero value
// runs it on the Dial loops where epoll is built.
func TestDialerEngine(t *testing.T) {
	addr := startServer(t, &Server{Engine: EngineStd, Events: seedEvents()})
	for _, tt := range []struct {
		engine Engine
		want   string
	}{
		{EngineAuto, map[bool]string{true: "*tcpkit.epConn", false: "*tcpkit.stdConn"}[epollBuilt]},
		{EngineStd, "*tcpkit.stdConn"},
		{EngineEpoll, "*tcpkit.epConn"},
	} {
		t.Run(tt.engine.String(), func(t *testing.T) {
			if tt.engine == EngineEpoll && !epollBuilt {
				t.Skip("epoll is Linux only")
			}
			d := Dialer{Engine: tt.engine}
			c, err := d.Dial(context.Background(), "tcp", addr, Events{})
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(c.t); got != tt.want {
				t.Errorf("the connection runs on a %s, want a %s", got, tt.want)
			}
			c.Write(testing_)
			waitDone(t, c)
		})
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
