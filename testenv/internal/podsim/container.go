package podsim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics of one container instance (reset at each restart, like a real process).
type metrics struct {
	counts map[int]float64
	hist   map[int][]float64 // per code, cumulative filled at render time
	sum    map[int]float64
}

func newMetrics() *metrics {
	m := &metrics{counts: map[int]float64{}, hist: map[int][]float64{}, sum: map[int]float64{}}
	for _, c := range []int{200, 500} {
		m.counts[c] = 0
		m.hist[c] = make([]float64, len(buckets)+1)
		m.sum[c] = 0
	}
	return m
}

func (m *metrics) observe(code int, d time.Duration) {
	if _, ok := m.hist[code]; !ok {
		m.hist[code] = make([]float64, len(buckets)+1)
	}
	m.counts[code]++
	s := d.Seconds()
	m.sum[code] += s
	i := sort.SearchFloat64s(buckets, s)
	m.hist[code][i]++
}

// render serves the metrics in the container's family (Behavior.Metrics).
func (m *metrics) render(family string, started time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %d\n", started.Unix())
	codes := make([]int, 0, len(m.counts))
	for c := range m.counts {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	switch family {
	case MetricsNone:
	case MetricsOtel:
		// OpenTelemetry's semantic conventions, as its Prometheus exporter writes them.
		m.histogram(&b, "http_server_request_duration_seconds", "Duration of HTTP server requests.", codes,
			func(c int) string { return fmt.Sprintf(`http_request_method="GET",http_response_status_code="%d"`, c) })
	case MetricsMicrometer:
		// Spring Boot's Micrometer timer (a summary without buckets by default).
		b.WriteString("# HELP http_server_requests_seconds HTTP server requests.\n# TYPE http_server_requests_seconds summary\n")
		for _, c := range codes {
			outcome := "SUCCESS"
			if c >= 500 {
				outcome = "SERVER_ERROR"
			}
			labels := fmt.Sprintf(`method="GET",outcome="%s",status="%d",uri="/"`, outcome, c)
			fmt.Fprintf(&b, "http_server_requests_seconds_count{%s} %g\n", labels, m.counts[c])
			fmt.Fprintf(&b, "http_server_requests_seconds_sum{%s} %g\n", labels, m.sum[c])
		}
	default:
		b.WriteString("# HELP http_requests_total Total HTTP requests served (real and synthetic).\n# TYPE http_requests_total counter\n")
		for _, c := range codes {
			fmt.Fprintf(&b, "http_requests_total{code=\"%d\",method=\"GET\"} %g\n", c, m.counts[c])
		}
		m.histogram(&b, "http_request_duration_seconds", "HTTP request latency.", codes,
			func(c int) string { return fmt.Sprintf(`code="%d",method="GET"`, c) })
	}
	return b.String()
}

func (m *metrics) histogram(b *strings.Builder, name, help string, codes []int, labels func(int) string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	for _, c := range codes {
		l := labels(c)
		cum := 0.0
		for i, ub := range buckets {
			cum += m.hist[c][i]
			fmt.Fprintf(b, "%s_bucket{%s,le=\"%g\"} %g\n", name, l, ub, cum)
		}
		cum += m.hist[c][len(buckets)]
		fmt.Fprintf(b, "%s_bucket{%s,le=\"+Inf\"} %g\n", name, l, cum)
		fmt.Fprintf(b, "%s_sum{%s} %g\n", name, l, m.sum[c])
		fmt.Fprintf(b, "%s_count{%s} %g\n", name, l, cum)
	}
}

type logLine struct {
	ts   time.Time
	text string
}

// logBuf holds the log of one container instance.
type logBuf struct {
	mu     sync.Mutex
	lines  []logLine
	closed bool
	notify chan struct{}
}

const maxLogLines = 20000

func newLogBuf() *logBuf { return &logBuf{notify: make(chan struct{})} }

func (l *logBuf) add(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.lines = append(l.lines, logLine{time.Now().UTC(), text})
	if len(l.lines) > maxLogLines {
		l.lines = append([]logLine(nil), l.lines[len(l.lines)-maxLogLines/2:]...)
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

func (l *logBuf) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.notify)
	}
}

// snapshot returns lines from index i on, a channel closed at the next change, and whether closed.
func (l *logBuf) snapshot(i int) ([]logLine, chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i > len(l.lines) {
		i = len(l.lines)
	}
	return append([]logLine(nil), l.lines[i:]...), l.notify, l.closed
}

// container is one simulated container.
type container struct {
	pod      *podSim
	name     string
	image    string // as in the spec (with tokens)
	imageID  string
	b        Behavior
	ports    []int32
	mu       sync.Mutex
	state    v1.ContainerState
	last     v1.ContainerState
	ready    bool
	started  bool
	restarts int32
	running  bool
	cur      *logBuf
	prev     *logBuf
	m        *metrics
	reqSeq   int64
	runStart time.Time // start of the current instance
	use      usage     // resource metrics
}

func newContainer(p *podSim, c v1.Container, annotation string) *container {
	real, _ := SplitImage(c.Image)
	h := sha256.Sum256([]byte(real))
	ct := &container{
		pod:     p,
		name:    c.Name,
		image:   c.Image,
		imageID: fmt.Sprintf("%s@sha256:%x", strings.Split(real, ":")[0], h),
		b:       ParseBehavior(annotation, c.Image),
		m:       newMetrics(),
		cur:     newLogBuf(),
	}
	// Without a ready-after token, a readiness probe makes the container Ready at its first
	// probe, initialDelaySeconds after the start (the simulator does not run probes).
	if rp := c.ReadinessProbe; rp != nil && !ct.b.ReadyAfterSet {
		ct.b.ReadyAfter = time.Duration(rp.InitialDelaySeconds) * time.Second
	}
	for _, p := range c.Ports {
		if p.Protocol == "" || p.Protocol == v1.ProtocolTCP {
			ct.ports = append(ct.ports, p.ContainerPort)
		}
	}
	ct.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	return ct
}

func (c *container) status() v1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := v1.ContainerStatus{
		Name:                 c.name,
		Image:                c.image,
		State:                c.state,
		LastTerminationState: c.last,
		Ready:                c.ready,
		RestartCount:         c.restarts,
		Started:              &c.started,
	}
	if c.state.Running != nil || c.last.Terminated != nil || c.state.Terminated != nil {
		st.ImageID = c.imageID
		st.ContainerID = fmt.Sprintf("containerd://%x", sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", c.pod.uid, c.name, c.restarts))))
	}
	return st
}

func (c *container) set(f func()) {
	c.mu.Lock()
	f()
	c.mu.Unlock()
	c.pod.dirty()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func nginxTime(t time.Time) string { return t.UTC().Format("2006/01/02 15:04:05") }

// run drives the container's lifecycle until ctx ends.
func (c *container) run(ctx context.Context) {
	b := c.b
	real, _ := SplitImage(c.image)
	if b.PullFail {
		for {
			c.set(func() {
				c.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ErrImagePull",
					Message: fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: %q: not found", real, real, real)}}
			})
			c.pod.event(v1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: rpc error: code = NotFound desc = failed to pull and unpack image %q: not found", real, real))
			c.pod.event(v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
			if !sleepCtx(ctx, PullErrTime) {
				return
			}
			c.set(func() {
				c.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ImagePullBackOff",
					Message: fmt.Sprintf("Back-off pulling image %q", real)}}
			})
			c.pod.event(v1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", real))
			c.pod.event(v1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
			if !sleepCtx(ctx, PullBackOffTime) {
				return
			}
		}
	}
	if b.StartAfter > 0 && !sleepCtx(ctx, b.StartAfter) {
		return
	}
	c.pod.event(v1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", real))
	failed := false
	for instance := 0; ; instance++ {
		runFor := time.Duration(0)
		readyOK := !b.NeverReady
		if b.Crash != "" || failed {
			runFor, readyOK = CrashRunTime, false
		} else if b.FailAfter > 0 {
			runFor = b.FailAfter
		}
		// start
		now := time.Now()
		c.set(func() {
			if instance > 0 {
				c.restarts++
				c.prev = c.cur
				c.cur = newLogBuf()
			}
			c.m = newMetrics()
			c.state = v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(now)}}
			c.runStart = now
			c.started = true
			c.running = true
			c.ready = readyOK && b.ReadyAfter <= 0
		})
		c.pod.event(v1.EventTypeNormal, "Created", "Created container: "+c.name)
		c.pod.event(v1.EventTypeNormal, "Started", "Started container "+c.name)
		c.startupLog(real)
		ictx, cancel := context.WithCancel(ctx)
		go c.traffic(ictx)
		if readyOK && b.ReadyAfter > 0 && (runFor == 0 || b.ReadyAfter < runFor) {
			go func() {
				if sleepCtx(ictx, b.ReadyAfter) {
					c.set(func() { c.ready = true })
				}
			}()
		}
		if runFor == 0 {
			<-ctx.Done()
			cancel()
			c.cur.close()
			return
		}
		if !sleepCtx(ctx, runFor) {
			cancel()
			c.cur.close()
			return
		}
		cancel()
		// exit
		failed = true
		reason, code := "Error", b.ExitCode
		if b.Crash == "oom" {
			reason, code = "OOMKilled", 137
		}
		if code == 0 {
			reason = "Completed"
		}
		if reason == "OOMKilled" {
			c.cur.add(fmt.Sprintf("%s [alert] 1#1: simulated OOM: worker process is being killed", nginxTime(time.Now())))
		} else {
			c.cur.add(fmt.Sprintf("%s [emerg] 1#1: simulated crash: fatal error, exiting with code %d", nginxTime(time.Now()), code))
		}
		c.cur.close()
		term := &v1.ContainerStateTerminated{ExitCode: code, Reason: reason, StartedAt: metav1.NewTime(now), FinishedAt: metav1.Now(),
			ContainerID: c.status().ContainerID}
		c.set(func() {
			c.running = false
			c.ready = false
			c.state = v1.ContainerState{Terminated: term}
		})
		if c.pod.restartPolicy == v1.RestartPolicyNever || (c.pod.restartPolicy == v1.RestartPolicyOnFailure && code == 0) {
			<-ctx.Done()
			return
		}
		if !sleepCtx(ctx, CrashTerminatedTime) {
			return
		}
		c.set(func() {
			c.last = v1.ContainerState{Terminated: term}
			c.state = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", CrashBackOff, c.name, c.pod.name, c.pod.namespace, c.pod.uid)}}
		})
		c.pod.event(v1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.name, c.pod.name, c.pod.namespace, c.pod.uid))
		if !sleepCtx(ctx, CrashBackOff) {
			return
		}
	}
}

func (c *container) startupLog(real string) {
	t := nginxTime(time.Now())
	c.cur.add("/docker-entrypoint.sh: Configuration complete; ready for start up")
	c.cur.add(fmt.Sprintf("%s [notice] 1#1: using the \"epoll\" event method", t))
	c.cur.add(fmt.Sprintf("%s [notice] 1#1: simulated %s starting in pod %s/%s (%s)", t, real, c.pod.namespace, c.pod.name, c.b.String()))
	c.cur.add(fmt.Sprintf("%s [notice] 1#1: start worker processes", t))
}

// degraded reports whether the error/latency/logerrors knobs apply now (degrade-after).
func (c *container) degraded() bool {
	if c.b.DegradeAfter <= 0 {
		return true
	}
	c.mu.Lock()
	st := c.runStart
	c.mu.Unlock()
	return time.Since(st) >= c.b.DegradeAfter
}

// outcome draws the status code and latency of one request.
func (c *container) outcome(r *rand.Rand) (int, time.Duration) {
	if !c.degraded() {
		return 200, time.Duration(500+r.Intn(1500)) * time.Microsecond
	}
	code := 200
	if r.Float64()*100 < c.b.ErrorPct {
		code = 500
	}
	return code, c.latency(r)
}

func (c *container) latency(r *rand.Rand) time.Duration {
	base := time.Duration(500+r.Intn(1500)) * time.Microsecond
	if c.b.Latency > 0 {
		base += time.Duration(float64(c.b.Latency) * (0.75 + 0.5*r.Float64()))
	}
	return base
}

// record counts one served request (real or synthetic) and writes its access-log line.
func (c *container) record(code int, d time.Duration, client, path, ua string, size int) {
	c.mu.Lock()
	c.m.observe(code, d)
	c.reqSeq++
	cur := c.cur
	c.mu.Unlock()
	cur.add(fmt.Sprintf("%s - - [%s] \"GET %s HTTP/1.1\" %d %d \"-\" \"%s\" rt=%.3f", client,
		time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"), path, code, size, ua, d.Seconds()))
}

// traffic generates synthetic requests and error log lines while the instance runs.
func (c *container) traffic(ctx context.Context) {
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	var reqTick, errTick <-chan time.Time
	if c.b.RPS > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / c.b.RPS))
		defer t.Stop()
		reqTick = t.C
	}
	if c.b.LogErrorsPerMin > 0 {
		t := time.NewTicker(time.Duration(float64(time.Minute) / c.b.LogErrorsPerMin))
		defer t.Stop()
		errTick = t.C
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-reqTick:
			code, lat := c.outcome(r)
			c.record(code, lat, c.pod.s.cfg.IPPrefix+".250.1", "/", "sim-traffic/1.0", 42)
		case <-errTick:
			if !c.degraded() {
				continue
			}
			n++
			c.mu.Lock()
			cur := c.cur
			c.mu.Unlock()
			cur.add(fmt.Sprintf("%s [error] 29#29: *%d simulated error: upstream timed out (110: Connection timed out) while reading response header from upstream, client: %s.250.1, server: localhost, request: \"GET /api HTTP/1.1\"", nginxTime(time.Now()), n, c.pod.s.cfg.IPPrefix))
		}
	}
}
