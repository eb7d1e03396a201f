package podsim

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"kubectl-canary/testenv/internal/netns"
	"kubectl-canary/testenv/internal/pki"
)

type netServer struct {
	s         *Sim
	ns        string
	mu        sync.Mutex
	listeners map[int]net.Listener
	servers   []*http.Server
}

func newNetServer(s *Sim, ns string) *netServer {
	return &netServer{s: s, ns: ns, listeners: map[int]net.Listener{}}
}

func (n *netServer) listen(port int) (net.Listener, error) {
	addr := fmt.Sprintf("0.0.0.0:%d", port)
	if n.ns == "" {
		return net.Listen("tcp4", addr)
	}
	return netns.Listen(n.ns, addr)
}

// filterListener refuses (RST) connections to pod IPs/ports with no running container.
type filterListener struct {
	net.Listener
	n    *netServer
	port int
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := c.LocalAddr().(*net.TCPAddr).IP.String()
		p := l.n.s.podByIP(ip)
		var ct *container
		if p != nil {
			ct = p.containerByPort(l.port)
		}
		if ct != nil {
			ct.mu.Lock()
			running := ct.running
			ct.mu.Unlock()
			if running {
				return c, nil
			}
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

type ctxKey struct{}

func (n *netServer) ensurePort(port int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.listeners[port]; ok {
		return nil
	}
	if port == 10250 {
		return fmt.Errorf("port 10250 is reserved for the simulated kubelet")
	}
	l, err := n.listen(port)
	if err != nil {
		return err
	}
	n.listeners[port] = l
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.servePod(port, w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, c.LocalAddr().(*net.TCPAddr).IP.String())
		},
	}
	n.servers = append(n.servers, srv)
	go func() { _ = srv.Serve(&filterListener{Listener: l, n: n, port: port}) }()
	return nil
}

func (n *netServer) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.servers {
		_ = s.Close()
	}
}

var rngMu sync.Mutex
var rng = rand.New(rand.NewSource(time.Now().UnixNano()))

func (n *netServer) servePod(port int, w http.ResponseWriter, r *http.Request) {
	ip, _ := r.Context().Value(ctxKey{}).(string)
	p := n.s.podByIP(ip)
	if p == nil {
		http.Error(w, "no such pod", http.StatusServiceUnavailable)
		return
	}
	c := p.containerByPort(port)
	if c == nil {
		http.Error(w, "no container on this port", http.StatusServiceUnavailable)
		return
	}
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if !running {
		// the process is gone: a kept-alive connection is reset, as by a dead container
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = conn.Close()
				return
			}
		}
		http.Error(w, "container not running", http.StatusServiceUnavailable)
		return
	}
	if c.b.ProxyTo != "" {
		// A stand-in for a real server's pod (Prometheus behind its Service): every request,
		// /metrics included, goes to the real server.
		httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: c.b.ProxyTo}).ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/metrics" {
		c.mu.Lock()
		body := c.m.render(c.b.Metrics, c.runStart)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(body))
		return
	}
	start := time.Now()
	rngMu.Lock()
	code, lat := c.outcome(rng)
	rngMu.Unlock()
	fail := code == http.StatusInternalServerError
	select {
	case <-time.After(lat):
	case <-r.Context().Done():
	}
	real, _ := SplitImage(c.image)
	body := fmt.Sprintf("hello from %s (%s)\n", p.name, real)
	if fail {
		body = fmt.Sprintf("simulated error from %s (%s)\n", p.name, real)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Sim-Pod", p.name)
	w.Header().Set("X-Sim-Image", real)
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
	client := r.RemoteAddr
	if h, _, err := net.SplitHostPort(client); err == nil {
		client = h
	}
	ua := r.UserAgent()
	if ua == "" {
		ua = "-"
	}
	c.record(code, time.Since(start), client, r.URL.RequestURI(), ua, len(body))
}

// startKubelet serves the kubelet API subset (container logs, resource metrics) on every
// node IP, port 10250.
func (n *netServer) startKubelet() error {
	ca, err := pki.NewCA("testenv-sim-kubelet-ca")
	if err != nil {
		return err
	}
	var hosts []string
	for i := 0; i < n.s.cfg.Nodes; i++ {
		hosts = append(hosts, n.s.NodeIP(i), fmt.Sprintf("sim-node-%d", i))
	}
	kp, err := ca.Issue("sim-kubelet", nil, hosts, false, true)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(append(kp.CertPEM, ca.CertPEM...), kp.KeyPEM)
	if err != nil {
		return err
	}
	l, err := n.listen(10250)
	if err != nil {
		return fmt.Errorf("kubelet listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/", n.containerLogs)
	mux.HandleFunc("/metrics/resource", n.resourceMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}}
	n.mu.Lock()
	n.servers = append(n.servers, srv)
	n.mu.Unlock()
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return nil
}

func (n *netServer) containerLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 {
		http.Error(w, "expected /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	ns, podName, cname := parts[0], parts[1], parts[2]
	p := n.s.podByName(ns, podName)
	if p == nil {
		http.Error(w, fmt.Sprintf("pod %q not found", ns+"/"+podName), http.StatusNotFound)
		return
	}
	c := p.containerByName(cname)
	if c == nil {
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", cname, podName), http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	follow := q.Get("follow") == "true"
	previous := q.Get("previous") == "true"
	timestamps := q.Get("timestamps") == "true"
	tail := -1
	if v := q.Get("tailLines"); v != "" {
		if t, err := strconv.Atoi(v); err == nil && t >= 0 {
			tail = t
		}
	}
	var since time.Time
	if v := q.Get("sinceSeconds"); v != "" {
		if s, err := strconv.Atoi(v); err == nil {
			since = time.Now().Add(-time.Duration(s) * time.Second)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			since = t
		}
	}
	limit := int64(-1)
	if v := q.Get("limitBytes"); v != "" {
		if l, err := strconv.ParseInt(v, 10, 64); err == nil && l > 0 {
			limit = l
		}
	}
	c.mu.Lock()
	buf, running, everRan := c.cur, c.running, c.started
	var waiting string
	if c.state.Waiting != nil {
		waiting = c.state.Waiting.Reason
	}
	if previous {
		// like the kubelet: the last terminated instance (the current log buffer while the
		// container is not running again yet)
		buf = c.prev
		if !running && everRan {
			buf = c.cur
		}
	}
	c.mu.Unlock()
	if !everRan && !previous {
		msg := fmt.Sprintf("container %q in pod %q is waiting to start: %s", cname, podName, waiting)
		switch waiting {
		case "ErrImagePull":
			msg = fmt.Sprintf("container %q in pod %q is waiting to start: image can't be pulled", cname, podName)
		case "ImagePullBackOff":
			msg = fmt.Sprintf("container %q in pod %q is waiting to start: trying and failing to pull image", cname, podName)
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	if buf == nil || (previous && !everRan) {
		http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", cname, podName), http.StatusBadRequest)
		return
	}
	lines, notify, closed := buf.snapshot(0)
	idx := len(lines)
	if !since.IsZero() {
		i := 0
		for i < len(lines) && lines[i].ts.Before(since) {
			i++
		}
		lines = lines[i:]
	}
	if tail >= 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	w.Header().Set("Content-Type", "text/plain")
	bw := bufio.NewWriter(w)
	written := int64(0)
	emit := func(ls []logLine) bool {
		for _, l := range ls {
			s := l.text + "\n"
			if timestamps {
				s = l.ts.Format(time.RFC3339Nano) + " " + s
			}
			if limit >= 0 && written+int64(len(s)) > limit {
				s = s[:limit-written]
				_, _ = bw.WriteString(s)
				return false
			}
			written += int64(len(s))
			_, _ = bw.WriteString(s)
		}
		return true
	}
	if !emit(lines) || !follow || previous {
		_ = bw.Flush()
		return
	}
	_ = bw.Flush()
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	for !closed {
		select {
		case <-r.Context().Done():
			return
		case <-notify:
		}
		var more []logLine
		more, notify, closed = buf.snapshot(idx)
		idx += len(more)
		if !emit(more) {
			_ = bw.Flush()
			return
		}
		_ = bw.Flush()
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}
