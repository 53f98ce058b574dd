package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tcpkit"
	"tcpkit/internal/proxy"
)

// metrics are serve's Prometheus metrics and its health, served by
// --metrics on /metrics and /healthz.
type metrics struct {
	reg       *prometheus.Registry
	open      prometheus.Gauge
	accepted  prometheus.Counter
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	exchanges prometheus.Counter
	latency   prometheus.Histogram
	errs      *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	draining  atomic.Bool
}

// newMetrics makes serve's metrics; dropped counts the output lines
// dropped because standard output could not keep up.
func newMetrics(dropped func() int64) *metrics {
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		open:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "tcpkit_connections_open", Help: "Connections open now."}),
		accepted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tcpkit_connections_accepted_total", Help: "Connections accepted and served."}),
		bytesIn:   prometheus.NewCounter(prometheus.CounterOpts{Name: "tcpkit_bytes_received_total", Help: "Bytes read from clients, counted when their connection closes."}),
		bytesOut:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tcpkit_bytes_sent_total", Help: "Bytes written to clients, counted when their connection closes."}),
		exchanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "tcpkit_exchanges_total", Help: "Messages received and handled (replied to, echoed, discarded, passed to the command)."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tcpkit_exchange_duration_seconds", Help: "Time from a message's arrival to its reply handed to the kernel.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12), // 1 µs to ~4 s
		}),
		errs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tcpkit_connection_errors_total", Help: "Connections broken by an error, by kind."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tcpkit_connections_rejected_total", Help: "Connections closed before being served, by reason."}, []string{"reason"}),
	}
	droppedLines := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tcpkit_output_dropped_lines_total",
		Help: "Output lines dropped because standard output did not keep up, or was gone.",
	}, func() float64 { return float64(dropped()) })
	m.reg.MustRegister(m.open, m.accepted, m.bytesIn, m.bytesOut, m.exchanges, m.latency, m.errs, m.rejected, droppedLines,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// wrap returns ev with the metrics kept around it.
func (m *metrics) wrap(ev tcpkit.Events) tcpkit.Events {
	inner := ev
	ev.OnConnect = func(c *tcpkit.Conn) {
		m.accepted.Inc()
		m.open.Inc()
		if inner.OnConnect != nil {
			inner.OnConnect(c)
		}
	}
	ev.OnData = func(c *tcpkit.Conn, p []byte) {
		start := time.Now()
		if inner.OnData != nil {
			inner.OnData(c, p)
		}
		m.exchanges.Inc()
		m.latency.Observe(time.Since(start).Seconds())
	}
	ev.OnError = func(c *tcpkit.Conn, err error) {
		m.errs.WithLabelValues(errorKind(err)).Inc()
		if inner.OnError != nil {
			inner.OnError(c, err)
		}
	}
	ev.OnClose = func(c *tcpkit.Conn, hadError bool) {
		m.open.Dec()
		m.bytesIn.Add(float64(c.BytesRead()))
		m.bytesOut.Add(float64(c.BytesWritten()))
		if inner.OnClose != nil {
			inner.OnClose(c, hadError)
		}
	}
	return ev
}

// reject counts a connection closed before being served.
func (m *metrics) reject(err error) { m.rejected.WithLabelValues(rejectKind(err)).Inc() }

// errorKind names an error for the errors metric's label.
func errorKind(err error) string {
	var pe *tcpkit.PanicError
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken_pipe"
	case errors.Is(err, tcpkit.ErrReadTimeout):
		return "read_timeout"
	case errors.Is(err, tcpkit.ErrWriteTimeout):
		return "write_timeout"
	case errors.Is(err, tcpkit.ErrEndTimeout):
		return "end_timeout"
	case errors.Is(err, tcpkit.ErrMessageTooLarge):
		return "message_too_large"
	case errors.As(err, &pe):
		return "panic"
	}
	return "other"
}

// rejectKind names a rejection for the rejected metric's label.
func rejectKind(err error) string {
	switch {
	case errors.Is(err, tcpkit.ErrTooManyConns):
		return "max_conns"
	case errors.Is(err, tcpkit.ErrTooManyConnsFromIP):
		return "max_conns_per_ip"
	case isProxyError(err):
		return "proxy_protocol"
	case isTLSError(err):
		return "tls"
	}
	return "other"
}

// serve serves /metrics and /healthz on ln until ctx is done. /healthz
// answers 200 until a drain starts, then 503, so that a balancer stops
// sending new connections before the listener closes.
func (m *metrics) serve(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if m.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	hs.Serve(ln)
}

// isProxyError reports whether a rejection came from the PROXY protocol.
func isProxyError(err error) bool {
	return errors.Is(err, proxy.ErrNoHeader) || errors.Is(err, proxy.ErrPeerNotAllowed) || errors.Is(err, proxy.ErrBadHeader)
}
