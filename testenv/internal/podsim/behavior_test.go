package podsim

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitImage(t *testing.T) {
	cases := []struct {
		in   string
		real string
		toks []string
	}{
		{"nginx:1.15", "nginx:1.15", nil},
		{"nginx:1.15__crashloop", "nginx:1.15", []string{"crashloop"}},
		{"web:v2__errors-30__latency-200ms__logerrors-60", "web:v2", []string{"errors-30", "latency-200ms", "logerrors-60"}},
		{"registry:5000/team/web:v2__oom", "registry:5000/team/web:v2", []string{"oom"}},
		{"registry:5000/team/web", "registry:5000/team/web", nil},
		{"nginx@sha256:abcd", "nginx@sha256:abcd", nil},
		{"nginx", "nginx", nil},
	}
	for _, c := range cases {
		real, toks := SplitImage(c.in)
		if real != c.real || !reflect.DeepEqual(toks, c.toks) {
			t.Errorf("SplitImage(%q) = %q %v, want %q %v", c.in, real, toks, c.real, c.toks)
		}
	}
}

func TestParseBehavior(t *testing.T) {
	b := ParseBehavior("ready-after-2s, errors-10 rps-0", "web:v2__errors-30__latency-200ms__logerrors-60__bogus")
	if b.ReadyAfter != 2*time.Second || b.ErrorPct != 30 || b.Latency != 200*time.Millisecond || b.RPS != 0 ||
		b.LogErrorsPerMin != 60 || !reflect.DeepEqual(b.Unknown, []string{"bogus"}) {
		t.Fatalf("got %+v", b)
	}
	if b := ParseBehavior("degrade-after-30s", "x:1__errors-50"); b.DegradeAfter != 30*time.Second || b.ErrorPct != 50 {
		t.Fatalf("got %+v", b)
	}
	if d := ParseBehavior("", "x:1"); d.RPS != DefaultRPS || d.ExitCode != 1 || d.Crash != "" {
		t.Fatalf("defaults: %+v", d)
	}
	if b := ParseBehavior("crashloop", "x:1__oom"); b.Crash != "oom" {
		t.Fatalf("image tokens must win: %+v", b)
	}
	if b := ParseBehavior("", "x:1__fail-after-1m__never-ready__pullfail__exit-3__start-after-500ms__latency-15"); b.FailAfter != time.Minute ||
		!b.NeverReady || !b.PullFail || b.ExitCode != 3 || b.StartAfter != 500*time.Millisecond || b.Latency != 15*time.Millisecond {
		t.Fatalf("got %+v", b)
	}
}

func TestResourceUsageTokens(t *testing.T) {
	cases := []struct {
		ann, image   string
		cpu, memory  Usage
		unknown      []string
		cpuOf, memOf float64 // resolved against request 200m / 128Mi
	}{
		{"", "x:1", DefaultCPU, DefaultMemory, nil, 0.001, 8 << 20},
		{"cpu-250m memory-64Mi", "x:1", Usage{0.25, -1}, Usage{64 << 20, -1}, nil, 0.25, 64 << 20},
		{"cpu-90pct", "x:1__mem-50pct", Usage{0, 90}, Usage{0, 50}, nil, 0.18, 64 << 20},
		{"cpu-90pct", "x:1__cpu-0.5", Usage{0.5, -1}, DefaultMemory, nil, 0.5, 8 << 20},
		{"cpu-x,memory--1", "x:1", DefaultCPU, DefaultMemory, []string{"cpu-x", "memory--1"}, 0.001, 8 << 20},
	}
	for _, c := range cases {
		b := ParseBehavior(c.ann, c.image)
		if b.CPU != c.cpu || b.Memory != c.memory || !reflect.DeepEqual(b.Unknown, c.unknown) {
			t.Errorf("%q %q: cpu %+v memory %+v unknown %v", c.ann, c.image, b.CPU, b.Memory, b.Unknown)
		}
		cpu, _ := b.CPU.Of(0.2, 0)
		mem, _ := b.Memory.Of(128<<20, 0)
		if diff := cpu - c.cpuOf; diff > 1e-9 || diff < -1e-9 || mem != c.memOf {
			t.Errorf("%q %q: resolved cpu %g memory %g, want %g %g", c.ann, c.image, cpu, mem, c.cpuOf, c.memOf)
		}
	}
	// a share of a limit when there is no request; none of nothing
	if v, ok := (Usage{Pct: 50}).Of(0, 2); !ok || v != 1 {
		t.Errorf("50%% of limit 2: %g %v", v, ok)
	}
	if _, ok := (Usage{Pct: 50}).Of(0, 0); ok {
		t.Error("a share of no request and no limit must not resolve")
	}
}

func TestMetricsRender(t *testing.T) {
	m := newMetrics()
	m.observe(200, 3*time.Millisecond)
	m.observe(500, 300*time.Millisecond)
	out := m.render(MetricsPrometheus, time.Unix(1700000000, 0))
	for _, want := range []string{
		`process_start_time_seconds 1700000000`,
		`http_requests_total{code="200",method="GET"} 1`,
		`http_requests_total{code="500",method="GET"} 1`,
		`http_request_duration_seconds_bucket{code="200",method="GET",le="0.005"} 1`,
		`http_request_duration_seconds_bucket{code="500",method="GET",le="0.25"} 0`,
		`http_request_duration_seconds_bucket{code="500",method="GET",le="0.5"} 1`,
		`http_request_duration_seconds_bucket{code="500",method="GET",le="+Inf"} 1`,
		`http_request_duration_seconds_count{code="500",method="GET"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
}

func TestMetricFamilies(t *testing.T) {
	m := newMetrics()
	m.observe(200, 3*time.Millisecond)
	m.observe(500, 300*time.Millisecond)
	m.observe(500, 300*time.Millisecond)
	cases := []struct {
		token, family string
		want, absent  []string
	}{
		{"", MetricsPrometheus, []string{`http_requests_total{code="500",method="GET"} 2`},
			[]string{"http_server_"}},
		{"metrics-otel", MetricsOtel, []string{
			`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",le="0.005"} 1`,
			`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="500"} 2`,
		}, []string{"http_requests_total", "http_server_requests_seconds"}},
		{"metrics-micrometer", MetricsMicrometer, []string{
			`http_server_requests_seconds_count{method="GET",outcome="SERVER_ERROR",status="500",uri="/"} 2`,
			`http_server_requests_seconds_sum{method="GET",outcome="SUCCESS",status="200",uri="/"} 0.003`,
		}, []string{"http_requests_total", "_bucket"}},
		{"metrics-none", MetricsNone, []string{"process_start_time_seconds"}, []string{"http_"}},
	}
	for _, tc := range cases {
		b := ParseBehavior("", "web:v1__"+tc.token)
		if tc.token == "" {
			b = ParseBehavior("", "web:v1")
		}
		if b.Metrics != tc.family || len(b.Unknown) > 0 {
			t.Fatalf("%q: family %q unknown %v", tc.token, b.Metrics, b.Unknown)
		}
		out := m.render(b.Metrics, time.Unix(1700000000, 0))
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: missing %s in\n%s", tc.family, want, out)
			}
		}
		for _, not := range tc.absent {
			if strings.Contains(out, not) {
				t.Errorf("%s: unexpected %s in\n%s", tc.family, not, out)
			}
		}
	}
	if b := ParseBehavior("", "web:v1__metrics-statsd"); len(b.Unknown) != 1 {
		t.Errorf("an unknown family is an unknown token: %v", b.Unknown)
	}
}
