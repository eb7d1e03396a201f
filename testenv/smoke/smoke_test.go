package smoke

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func deployment(name string, replicas int, image string, podAnnotations map[string]string, extraSpec string) string {
	ann := ""
	for k, v := range podAnnotations {
		ann += fmt.Sprintf("        %s: %q\n", k, v)
	}
	if ann != "" {
		ann = "      annotations:\n" + ann
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels: {app: %[1]s}
spec:
  replicas: %[2]d
%[5]s  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
%[4]s    spec:
      containers:
      - name: %[1]s
        image: %[3]s
        ports:
        - containerPort: 80
`, name, replicas, image, ann, extraSpec)
}

func waitRollout(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	kubectl(t, "-n", ns, "rollout", "status", "deployment/"+name, fmt.Sprintf("--timeout=%s", timeout))
}

func imagesOf(t *testing.T, ns, selector string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, p := range listPods(t, ns, selector) {
		m[p.Spec.Containers[0].Image]++
	}
	return m
}

// Acceptance: a Deployment web of 10 replicas rolls from nginx:1.14 to nginx:1.15 and completes.
func TestRollingUpdateCompletes(t *testing.T) {
	ns := newNamespace(t, "roll")
	apply(t, ns, deployment("web", 10, "nginx:1.14", nil, ""))
	waitRollout(t, ns, "web", 60*time.Second)
	kubectl(t, "-n", ns, "set", "image", "deployment/web", "web=nginx:1.15")
	waitRollout(t, ns, "web", 90*time.Second)
	var d struct {
		Status struct {
			Replicas, UpdatedReplicas, ReadyReplicas, AvailableReplicas int
		} `json:"status"`
	}
	getJSON(t, &d, "-n", ns, "get", "deployment", "web")
	if d.Status.UpdatedReplicas != 10 || d.Status.AvailableReplicas != 10 {
		t.Fatalf("deployment status %+v", d.Status)
	}
	waitFor(t, 30*time.Second, "old pods gone", func() (bool, string) {
		m := imagesOf(t, ns, "app=web")
		return len(m) == 1 && m["nginx:1.15"] == 10, fmt.Sprint(m)
	})
	for _, p := range listPods(t, ns, "app=web") {
		if p.Status.Phase != "Running" || p.cond("Ready").Status != "True" || p.Status.PodIP == "" || p.Spec.NodeName == "" {
			t.Errorf("pod %s: phase %s ready %s ip %q node %q", p.Metadata.Name, p.Status.Phase, p.cond("Ready").Status, p.Status.PodIP, p.Spec.NodeName)
		}
	}
}

// Acceptance: the handout's manual recipe with the real kubectl; undo on a paused
// Deployment gives kubectl's own refusal.
func TestManualRecipePauseResume(t *testing.T) {
	ns := newNamespace(t, "recipe")
	// every pod becomes Ready 4 s after it starts, so the rollout can be paused half-way
	apply(t, ns, deployment("web", 10, "nginx:1.14", map[string]string{"sim.kubectl-canary.io/behavior": "ready-after-4s"}, ""))
	waitRollout(t, ns, "web", 60*time.Second)
	kubectl(t, "-n", ns, "set", "image", "deployment/web", "web=nginx:1.15")
	waitFor(t, 20*time.Second, "first nginx:1.15 pods", func() (bool, string) {
		m := imagesOf(t, ns, "app=web")
		return m["nginx:1.15"] > 0, fmt.Sprint(m)
	})
	kubectl(t, "-n", ns, "rollout", "pause", "deployment/web")
	out := kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image")
	if !strings.Contains(out, "nginx:1.14") || !strings.Contains(out, "nginx:1.15") {
		t.Fatalf("kubectl get pods does not show both versions:\n%s", out)
	}
	t.Logf("paused:\n%s", out)
	undo, err := kubectlErr("-n", ns, "rollout", "undo", "deployment/web")
	if err == nil {
		t.Fatalf("rollout undo on a paused deployment succeeded: %s", undo)
	}
	if !strings.Contains(err.Error(), "you cannot rollback a paused deployment") {
		t.Fatalf("unexpected undo error: %v", err)
	}
	// still paused, still mixed
	time.Sleep(5 * time.Second)
	if m := imagesOf(t, ns, "app=web"); m["nginx:1.14"] == 0 {
		t.Fatalf("paused rollout went on: %v", m)
	}
	kubectl(t, "-n", ns, "rollout", "resume", "deployment/web")
	waitRollout(t, ns, "web", 120*time.Second)
	waitFor(t, 30*time.Second, "only nginx:1.15", func() (bool, string) {
		m := imagesOf(t, ns, "app=web")
		return len(m) == 1 && m["nginx:1.15"] == 10, fmt.Sprint(m)
	})
}

func runPod(t *testing.T, ns, name, image string, annotations ...string) {
	t.Helper()
	args := []string{"-n", ns, "run", name, "--image=" + image, "--restart=Always", "--port=80"}
	for _, a := range annotations {
		args = append(args, "--annotations="+a)
	}
	kubectl(t, args...)
}

func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, f func(p pod) bool) pod {
	t.Helper()
	var last pod
	waitFor(t, timeout, name+": "+what, func() (bool, string) {
		last = getPod(t, ns, name)
		b, _ := jsonString(last.Status)
		return f(last), b
	})
	return last
}

// Acceptance: each simulated failure behaviour shows up in pod status as a kubelet reports it.
func TestBehaviours(t *testing.T) {
	ns := newNamespace(t, "behave")
	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "healthy", "app:v1")
		p := waitPod(t, ns, "healthy", 20*time.Second, "ready", func(p pod) bool { return p.cond("Ready").Status == "True" })
		cs := p.Status.ContainerStatuses[0]
		if p.Status.Phase != "Running" || cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started ||
			cs.ImageID == "" || p.Status.PodIP == "" || p.Status.HostIP == "" || p.Status.StartTime == "" {
			t.Fatalf("healthy pod status incomplete: %+v", p.Status)
		}
		for _, c := range []string{"PodScheduled", "Initialized", "ContainersReady", "Ready"} {
			if p.cond(c).Status != "True" || p.cond(c).LastTransitionTime == "" {
				t.Errorf("condition %s: %+v", c, p.cond(c))
			}
		}
	})
	t.Run("crashloop", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "crash", "app:v1__crashloop")
		p := waitPod(t, ns, "crash", 30*time.Second, "CrashLoopBackOff with restarts", func(p pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.RestartCount >= 1 &&
				cs.LastState.Terminated != nil && cs.LastState.Terminated.Reason == "Error" && cs.LastState.Terminated.ExitCode == 1
		})
		first := p.Status.ContainerStatuses[0].RestartCount
		waitPod(t, ns, "crash", 20*time.Second, "restartCount rising", func(p pod) bool {
			return p.Status.ContainerStatuses[0].RestartCount > first
		})
		if p.Status.Phase != "Running" || p.cond("Ready").Status != "False" {
			t.Errorf("crashloop pod: phase %s ready %s", p.Status.Phase, p.cond("Ready").Status)
		}
		prev := kubectl(t, "-n", ns, "logs", "crash", "--previous")
		if !strings.Contains(prev, "simulated crash") {
			t.Errorf("previous log lacks the crash line:\n%s", prev)
		}
	})
	t.Run("oom", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "oom", "app:v1__oom")
		waitPod(t, ns, "oom", 30*time.Second, "OOMKilled in lastState", func(p pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			return cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && cs.LastState.Terminated != nil &&
				cs.LastState.Terminated.Reason == "OOMKilled" && cs.LastState.Terminated.ExitCode == 137
		})
	})
	t.Run("pullfail", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "pull", "app:v1__pullfail")
		seen := map[string]bool{}
		waitPod(t, ns, "pull", 30*time.Second, "ErrImagePull and ImagePullBackOff", func(p pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			if cs.State.Waiting != nil {
				seen[cs.State.Waiting.Reason] = true
			}
			if cs.State.Running != nil || p.Status.Phase != "Pending" || cs.RestartCount != 0 {
				t.Fatalf("pullfail pod ran: %+v", p.Status)
			}
			return seen["ErrImagePull"] && seen["ImagePullBackOff"]
		})
		if _, err := kubectlErr("-n", ns, "logs", "pull"); err == nil || !strings.Contains(err.Error(), "waiting to start") {
			t.Errorf("logs of a never-started container: %v", err)
		}
	})
	t.Run("never-ready", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "never", "app:v1__never-ready")
		waitPod(t, ns, "never", 20*time.Second, "running", func(p pod) bool {
			return len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].State.Running != nil
		})
		time.Sleep(3 * time.Second)
		p := getPod(t, ns, "never")
		if p.cond("Ready").Status != "False" || p.Status.ContainerStatuses[0].Ready || p.Status.Phase != "Running" {
			t.Fatalf("never-ready pod: %+v", p.Status)
		}
	})
	t.Run("ready-after", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "slow", "app:v1", "sim.kubectl-canary.io/behavior=ready-after-3s")
		p := waitPod(t, ns, "slow", 20*time.Second, "ready", func(p pod) bool { return p.cond("Ready").Status == "True" })
		started, _ := time.Parse(time.RFC3339, p.Status.ContainerStatuses[0].State.Running.StartedAt)
		readyAt, _ := time.Parse(time.RFC3339, p.cond("Ready").LastTransitionTime)
		if d := readyAt.Sub(started); d < 2*time.Second {
			t.Fatalf("ready %s after start, want about 3s", d)
		}
	})
	t.Run("readiness-probe", func(t *testing.T) {
		t.Parallel()
		kubectl(t, "-n", ns, "run", "probe", "--image=app:v1", "--overrides",
			`{"spec":{"containers":[{"name":"probe","image":"app:v1","readinessProbe":{"httpGet":{"path":"/","port":80},"initialDelaySeconds":3}}]}}`)
		p := waitPod(t, ns, "probe", 20*time.Second, "ready", func(p pod) bool { return p.cond("Ready").Status == "True" })
		started, _ := time.Parse(time.RFC3339, p.Status.ContainerStatuses[0].State.Running.StartedAt)
		readyAt, _ := time.Parse(time.RFC3339, p.cond("Ready").LastTransitionTime)
		if d := readyAt.Sub(started); d < 2*time.Second {
			t.Fatalf("ready %s after start, want about initialDelaySeconds=3s", d)
		}
	})
	t.Run("fail-after", func(t *testing.T) {
		t.Parallel()
		runPod(t, ns, "later", "app:v1__fail-after-3s")
		waitPod(t, ns, "later", 20*time.Second, "ready first", func(p pod) bool { return p.cond("Ready").Status == "True" })
		waitPod(t, ns, "later", 30*time.Second, "then crash-looping", func(p pod) bool {
			cs := p.Status.ContainerStatuses[0]
			return cs.RestartCount >= 1 && cs.LastState.Terminated != nil && p.cond("Ready").Status == "False"
		})
	})
}

// Acceptance: a pod's log and an HTTP request through the pod proxy and the Service proxy
// return the simulator's answers.
func TestLogsAndProxies(t *testing.T) {
	ns := newNamespace(t, "proxy")
	apply(t, ns, deployment("web", 2, "nginx:1.15__logerrors-120", nil, ""))
	kubectl(t, "-n", ns, "expose", "deployment/web", "--port=8080", "--target-port=80")
	waitRollout(t, ns, "web", 60*time.Second)
	pods := listPods(t, ns, "app=web")
	name := pods[0].Metadata.Name
	out := kubectl(t, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:80/proxy/hello", ns, name))
	if want := fmt.Sprintf("hello from %s (nginx:1.15)", name); !strings.Contains(out, want) {
		t.Fatalf("pod proxy answered %q, want %q", out, want)
	}
	waitFor(t, 20*time.Second, "service proxy", func() (bool, string) {
		out, err := kubectlErr("get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/services/web:8080/proxy/x", ns))
		return err == nil && strings.Contains(out, "hello from web-") && strings.Contains(out, "(nginx:1.15)"), out + fmt.Sprint(err)
	})
	metrics := kubectl(t, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:80/proxy/metrics", ns, name))
	for _, want := range []string{`http_requests_total{code="200",method="GET"}`, `http_request_duration_seconds_bucket{code="200",method="GET",le="0.005"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
	waitFor(t, 20*time.Second, "error lines in the log", func() (bool, string) {
		logs := kubectl(t, "-n", ns, "logs", name)
		return strings.Contains(logs, "[error]") && strings.Contains(logs, `"GET /hello HTTP/1.1" 200`) &&
			strings.Contains(logs, "start worker processes"), logs
	})
	tail := kubectl(t, "-n", ns, "logs", name, "--tail=2", "--timestamps")
	if lines := strings.Split(strings.TrimSpace(tail), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "20") {
		t.Errorf("--tail=2 --timestamps gave:\n%s", tail)
	}
}

// HTTP error rate and latency knobs, measured through the pod proxy.
func TestErrorsAndLatency(t *testing.T) {
	ns := newNamespace(t, "http")
	runPod(t, ns, "bad", "app:v2__errors-100__latency-300ms__rps-0")
	waitPod(t, ns, "bad", 20*time.Second, "ready", func(p pod) bool { return p.cond("Ready").Status == "True" })
	start := time.Now()
	out, err := kubectlErr("get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/bad:80/proxy/", ns))
	if err == nil || !strings.Contains(out+err.Error(), "simulated error from bad") {
		t.Fatalf("want a 500 from the simulator, got %q %v", out, err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("request took %s, want >= 225ms", d)
	}
	metrics := kubectl(t, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/bad:80/proxy/metrics", ns))
	if !strings.Contains(metrics, `http_requests_total{code="500",method="GET"} 1`) {
		t.Errorf("metrics:\n%s", metrics)
	}
}

// degrade-after: healthy answers first, errors later.
func TestDegradeAfter(t *testing.T) {
	ns := newNamespace(t, "degrade")
	runPod(t, ns, "worse", "app:v2__degrade-after-4s__errors-100__rps-0")
	waitPod(t, ns, "worse", 20*time.Second, "ready", func(p pod) bool { return p.cond("Ready").Status == "True" })
	path := fmt.Sprintf("/api/v1/namespaces/%s/pods/worse:80/proxy/", ns)
	if out, err := kubectlErr("get", "--raw", path); err != nil || !strings.Contains(out, "hello from worse") {
		t.Fatalf("before degrade-after: %q %v", out, err)
	}
	waitFor(t, 15*time.Second, "errors after 4s", func() (bool, string) {
		out, err := kubectlErr("get", "--raw", path)
		return err != nil && strings.Contains(out+err.Error(), "simulated error from worse"), out
	})
}

// Acceptance: a PromQL query returns per-pod series (labels namespace, pod, node and the pod labels).
func TestPrometheusPerPodSeries(t *testing.T) {
	ns := newNamespace(t, "prom")
	apply(t, ns, deployment("web", 3, "nginx:1.15__errors-20__latency-50ms__rps-20",
		map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "80"}, ""))
	waitRollout(t, ns, "web", 60*time.Second)
	q := fmt.Sprintf(`sum by (pod, pod_template_hash, node, app) (rate(http_requests_total{namespace=%q}[5s]))`, ns)
	waitFor(t, 45*time.Second, "3 per-pod series", func() (bool, string) {
		r := promQuery(t, q)
		if len(r) != 3 {
			return false, fmt.Sprint(r)
		}
		for _, s := range r {
			if s.Metric["pod_template_hash"] == "" || s.Metric["node"] == "" || s.Metric["app"] != "web" || !strings.HasPrefix(s.Metric["pod"], "web-") {
				return false, fmt.Sprint(s.Metric)
			}
		}
		return true, ""
	})
	eq := fmt.Sprintf(`sum(rate(http_requests_total{namespace=%q,code="500"}[10s])) / sum(rate(http_requests_total{namespace=%q}[10s]))`, ns, ns)
	waitFor(t, 30*time.Second, "error ratio near 0.2", func() (bool, string) {
		r := promQuery(t, eq)
		if len(r) != 1 {
			return false, fmt.Sprint(r)
		}
		var v float64
		fmt.Sscan(fmt.Sprint(r[0].Value[1]), &v)
		return v > 0.05 && v < 0.4, fmt.Sprint(v)
	})
	lq := fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{namespace=%q}[10s])))`, ns)
	waitFor(t, 30*time.Second, "median latency near 50ms", func() (bool, string) {
		r := promQuery(t, lq)
		if len(r) != 1 {
			return false, fmt.Sprint(r)
		}
		var v float64
		fmt.Sscan(fmt.Sprint(r[0].Value[1]), &v)
		return v > 0.025 && v < 0.1, fmt.Sprint(v)
	})
}

// The restricted identity can read but not write.
func TestRestrictedUser(t *testing.T) {
	ns := newNamespace(t, "rbac")
	rk := env["KC_RESTRICTED_KUBECONFIG"]
	if _, err := os.Stat(rk); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectlCmd(rk, "-n", ns, "get", "pods"); err != nil {
		t.Fatalf("restricted user cannot list pods: %v", err)
	}
	out, err := kubectlCmd(rk, "-n", ns, "create", "deployment", "x", "--image=nginx")
	if err == nil || !strings.Contains(out+err.Error(), "forbidden") {
		t.Fatalf("restricted user could create a deployment: %s %v", out, err)
	}
	who, _ := kubectlCmd(rk, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if strings.TrimSpace(who) != "restricted" {
		t.Errorf("whoami: %q", who)
	}
}

// The real scheduler reports unschedulable pods.
func TestUnschedulable(t *testing.T) {
	ns := newNamespace(t, "sched")
	kubectl(t, "-n", ns, "run", "huge", "--image=app:v1", "--overrides", `{"spec":{"containers":[{"name":"huge","image":"app:v1","resources":{"requests":{"cpu":"100"}}}]}}`)
	waitPod(t, ns, "huge", 20*time.Second, "PodScheduled=False/Unschedulable", func(p pod) bool {
		c := p.cond("PodScheduled")
		return c.Status == "False" && c.Reason == "Unschedulable"
	})
	waitFor(t, 20*time.Second, "FailedScheduling event", func() (bool, string) {
		out := kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=FailedScheduling", "-o", "name")
		return strings.TrimSpace(out) != "", out
	})
}
