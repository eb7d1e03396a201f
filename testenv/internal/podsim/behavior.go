package podsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// BehaviorAnnotation selects behaviour tokens for every container of a pod.
const BehaviorAnnotation = "sim.kubectl-canary.io/behavior"

// Timings of the simulated kubelet (much faster than a real one so that tests are quick).
const (
	CrashRunTime        = 1 * time.Second        // a crashing container runs this long
	CrashTerminatedTime = 500 * time.Millisecond // state.terminated shown before CrashLoopBackOff
	CrashBackOff        = 2 * time.Second        // CrashLoopBackOff wait before the next start
	PullErrTime         = 2 * time.Second        // ErrImagePull shown this long
	PullBackOffTime     = 3 * time.Second        // then ImagePullBackOff this long, and again
	DefaultRPS          = 5
)

// Behavior is what one simulated container does.
type Behavior struct {
	ReadyAfter      time.Duration
	ReadyAfterSet   bool // ready-after given explicitly
	NeverReady      bool
	Crash           string // "", "crashloop" or "oom"
	PullFail        bool
	FailAfter       time.Duration // 0: never
	StartAfter      time.Duration // ContainerCreating this long before the first start
	DegradeAfter    time.Duration // errors, latency and logerrors apply only after this (0: at once)
	ErrorPct        float64
	Latency         time.Duration
	RPS             float64
	LogErrorsPerMin float64
	ExitCode        int32  // exit code of crashloop (default 1)
	CPU             Usage  // CPU in use while running (kubelet resource metrics)
	Memory          Usage  // memory working set while running
	Metrics         string // request-metric family served on /metrics (see MetricFamilies)
	ProxyTo         string // host:port every HTTP request is forwarded to (proxy-to-<host:port>)
	Unknown         []string
}

// Usage is a resource usage: an absolute amount, or a share of the container's request
// (of its limit when it has no request).
type Usage struct {
	Amount float64 // cores or bytes (used when Pct < 0)
	Pct    float64 // percent of the request (or limit); < 0: Amount applies
}

// Default resource usage of a running container (an idle nginx).
var (
	DefaultCPU    = Usage{Amount: 0.001, Pct: -1}   // 1m
	DefaultMemory = Usage{Amount: 8 << 20, Pct: -1} // 8Mi
)

// Of resolves u against a container's request and limit (cores or bytes); ok is false for
// a percentage of a resource that has neither.
func (u Usage) Of(request, limit float64) (float64, bool) {
	if u.Pct < 0 {
		return u.Amount, true
	}
	base := request
	if base <= 0 {
		base = limit
	}
	if base <= 0 {
		return 0, false
	}
	return base * u.Pct / 100, true
}

// parseUsage reads "<n>pct" or a resource.Quantity ("250m", "0.5", "64Mi").
func parseUsage(v string) (Usage, bool) {
	if pct, ok := strings.CutSuffix(v, "pct"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f < 0 {
			return Usage{}, false
		}
		return Usage{Pct: f}, true
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() < 0 {
		return Usage{}, false
	}
	return Usage{Amount: q.AsApproximateFloat64(), Pct: -1}, true
}

// Request-metric families a container can export on /metrics (token metrics-<family>): the
// names real services use, so that metric discovery is tested on more than one naming.
const (
	MetricsPrometheus = "prometheus" // http_requests_total{code} + http_request_duration_seconds{code}
	MetricsOtel       = "otel"       // http_server_request_duration_seconds{http_response_status_code}
	MetricsMicrometer = "micrometer" // http_server_requests_seconds{status}
	MetricsNone       = "none"       // no request metrics (process_start_time_seconds only)
)

// MetricFamilies are the families of metrics-<family>, the default first.
var MetricFamilies = []string{MetricsPrometheus, MetricsOtel, MetricsMicrometer, MetricsNone}

// DefaultBehavior is a healthy container.
func DefaultBehavior() Behavior {
	return Behavior{RPS: DefaultRPS, ExitCode: 1, CPU: DefaultCPU, Memory: DefaultMemory, Metrics: MetricsPrometheus}
}

// SplitImage separates an image reference into the real image and behaviour tokens taken
// from the tag after a double underscore, e.g. "nginx:1.15__crashloop__errors-5".
func SplitImage(image string) (string, []string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image, nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return image, nil
	}
	tag := image[colon+1:]
	parts := strings.Split(tag, "__")
	if len(parts) == 1 {
		return image, nil
	}
	var toks []string
	for _, p := range parts[1:] {
		if p != "" {
			toks = append(toks, p)
		}
	}
	return image[:colon+1] + parts[0], toks
}

// SplitAnnotation splits the annotation value on spaces and commas.
func SplitAnnotation(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' })
}

// ParseBehavior applies annotation tokens, then image tokens (which win).
func ParseBehavior(annotation string, image string) Behavior {
	b := DefaultBehavior()
	for _, t := range SplitAnnotation(annotation) {
		b.apply(t)
	}
	_, toks := SplitImage(image)
	for _, t := range toks {
		b.apply(t)
	}
	return b
}

func parseDur(s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, err2 := strconv.ParseFloat(s, 64); err2 == nil {
			return time.Duration(n * float64(time.Second)), true
		}
		return 0, false
	}
	return d, true
}

func (b *Behavior) apply(tok string) {
	t := strings.ToLower(strings.TrimSpace(tok))
	switch {
	case t == "":
	case t == "healthy" || t == "ok":
		*b = DefaultBehavior()
	case t == "never-ready" || t == "neverready":
		b.NeverReady = true
	case t == "crashloop" || t == "crash":
		b.Crash = "crashloop"
	case t == "oom" || t == "oomkilled":
		b.Crash = "oom"
	case t == "pullfail" || t == "imagepullfail":
		b.PullFail = true
	case strings.HasPrefix(t, "ready-after-"):
		if d, ok := parseDur(strings.TrimPrefix(t, "ready-after-")); ok {
			b.ReadyAfter, b.ReadyAfterSet = d, true
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "fail-after-"):
		if d, ok := parseDur(strings.TrimPrefix(t, "fail-after-")); ok {
			b.FailAfter = d
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "start-after-"):
		if d, ok := parseDur(strings.TrimPrefix(t, "start-after-")); ok {
			b.StartAfter = d
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "degrade-after-"):
		if d, ok := parseDur(strings.TrimPrefix(t, "degrade-after-")); ok {
			b.DegradeAfter = d
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "errors-"):
		if f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(t, "errors-"), "pct"), 64); err == nil && f >= 0 && f <= 100 {
			b.ErrorPct = f
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "latency-"):
		v := strings.TrimPrefix(t, "latency-")
		if d, err := time.ParseDuration(v); err == nil {
			b.Latency = d
			return
		}
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			b.Latency = time.Duration(n * float64(time.Millisecond))
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "rps-"):
		if f, err := strconv.ParseFloat(strings.TrimPrefix(t, "rps-"), 64); err == nil && f >= 0 {
			b.RPS = f
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "logerrors-"):
		if f, err := strconv.ParseFloat(strings.TrimPrefix(t, "logerrors-"), 64); err == nil && f >= 0 {
			b.LogErrorsPerMin = f
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "cpu-"):
		if u, ok := parseUsage(strings.TrimPrefix(t, "cpu-")); ok {
			b.CPU = u
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "memory-") || strings.HasPrefix(t, "mem-"):
		raw := strings.TrimSpace(tok) // quantities are case-sensitive (Mi, M)
		if u, ok := parseUsage(raw[strings.Index(raw, "-")+1:]); ok {
			b.Memory = u
			return
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "proxy-to-"):
		b.ProxyTo = strings.TrimPrefix(t, "proxy-to-")
	case strings.HasPrefix(t, "metrics-"):
		family := strings.TrimPrefix(t, "metrics-")
		for _, f := range MetricFamilies {
			if family == f {
				b.Metrics = f
				return
			}
		}
		b.Unknown = append(b.Unknown, tok)
	case strings.HasPrefix(t, "exit-"):
		if n, err := strconv.Atoi(strings.TrimPrefix(t, "exit-")); err == nil {
			b.ExitCode = int32(n)
			return
		}
		b.Unknown = append(b.Unknown, tok)
	default:
		b.Unknown = append(b.Unknown, tok)
	}
}

func (b Behavior) String() string {
	var s []string
	if b.PullFail {
		s = append(s, "pullfail")
	}
	if b.Crash != "" {
		s = append(s, b.Crash)
	}
	if b.NeverReady {
		s = append(s, "never-ready")
	}
	if b.ReadyAfter > 0 {
		s = append(s, "ready-after-"+b.ReadyAfter.String())
	}
	if b.FailAfter > 0 {
		s = append(s, "fail-after-"+b.FailAfter.String())
	}
	if b.StartAfter > 0 {
		s = append(s, "start-after-"+b.StartAfter.String())
	}
	if b.DegradeAfter > 0 {
		s = append(s, "degrade-after-"+b.DegradeAfter.String())
	}
	s = append(s, fmt.Sprintf("errors-%g", b.ErrorPct), fmt.Sprintf("latency-%dms", b.Latency.Milliseconds()),
		fmt.Sprintf("rps-%g", b.RPS), fmt.Sprintf("logerrors-%g", b.LogErrorsPerMin))
	if b.CPU != DefaultCPU {
		s = append(s, "cpu-"+b.CPU.String())
	}
	if b.Memory != DefaultMemory {
		s = append(s, "memory-"+b.Memory.String())
	}
	if b.Metrics != MetricsPrometheus {
		s = append(s, "metrics-"+b.Metrics)
	}
	if len(b.Unknown) > 0 {
		s = append(s, fmt.Sprintf("unknown=%v", b.Unknown))
	}
	return strings.Join(s, " ")
}

func (u Usage) String() string {
	if u.Pct >= 0 {
		return fmt.Sprintf("%gpct", u.Pct)
	}
	return fmt.Sprintf("%g", u.Amount)
}
