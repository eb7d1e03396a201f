package smoke

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// topPods is `kubectl top pods`: pod -> (millicores, MiB).
func topPods(ns, selector string) (map[string][2]int, error) {
	out, err := kubectlErr("-n", ns, "top", "pods", "-l", selector, "--no-headers")
	if err != nil {
		return nil, err
	}
	m := map[string][2]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || !strings.HasSuffix(f[1], "m") || !strings.HasSuffix(f[2], "Mi") {
			return nil, fmt.Errorf("unexpected kubectl top line %q", l)
		}
		cpu, err1 := strconv.Atoi(strings.TrimSuffix(f[1], "m"))
		mem, err2 := strconv.Atoi(strings.TrimSuffix(f[2], "Mi"))
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("unexpected kubectl top line %q", l)
		}
		m[f[0]] = [2]int{cpu, mem}
	}
	return m, nil
}

// within reports whether v is within tol of want.
func within(v, want, tol int) bool { return v >= want-tol && v <= want+tol }

// The real metrics-server scrapes the simulated kubelets' /metrics/resource: `kubectl top`
// shows the usage the behaviour tokens chose, and an HPA on 50 % CPU scales up to its
// maximum at 90 % and back down to its minimum at 10 % (the annotation changed on the pods).
func TestResourceMetricsHPA(t *testing.T) {
	ns := newNamespace(t, "metrics")
	apply(t, ns, deployment("cpu", 2, "nginx:1.15", map[string]string{
		"sim.kubectl-canary.io/behavior": "cpu-90pct memory-48Mi"}, "")+
		`        resources: {requests: {cpu: 100m, memory: 64Mi}}
`)
	waitRollout(t, ns, "cpu", 60*time.Second)
	pods := listPods(t, ns, "app=cpu")

	// the kubelet endpoint itself, through the API server's node proxy
	raw := kubectl(t, "get", "--raw", "/api/v1/nodes/"+pods[0].Spec.NodeName+"/proxy/metrics/resource")
	for _, want := range []string{
		fmt.Sprintf(`container_memory_working_set_bytes{container="cpu",namespace=%q,pod=%q} 5.0331648e+07`, ns, pods[0].Metadata.Name),
		fmt.Sprintf(`container_cpu_usage_seconds_total{container="cpu",namespace=%q,pod=%q} `, ns, pods[0].Metadata.Name),
		"# TYPE node_cpu_usage_seconds_total counter", "node_memory_working_set_bytes ", "resource_scrape_error 0",
	} {
		if !strings.Contains(raw, want) {
			t.Fatalf("/metrics/resource of %s lacks %q:\n%s", pods[0].Spec.NodeName, want, raw)
		}
	}

	// metrics-server: 90 % of 100m, 48Mi, per pod (after its first two scrapes)
	waitFor(t, 60*time.Second, "kubectl top pods: 90m and 48Mi each", func() (bool, string) {
		m, err := topPods(ns, "app=cpu")
		if err != nil {
			return false, err.Error()
		}
		ok := len(m) == 2
		for _, v := range m {
			ok = ok && within(v[0], 90, 3) && v[1] == 48
		}
		return ok, fmt.Sprint(m)
	})
	var pm struct {
		Items []struct {
			Containers []struct {
				Name  string            `json:"name"`
				Usage map[string]string `json:"usage"`
			} `json:"containers"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/"+ns+"/pods")), &pm); err != nil {
		t.Fatal(err)
	}
	if len(pm.Items) != 2 || len(pm.Items[0].Containers) != 1 || pm.Items[0].Containers[0].Usage["memory"] != "48Mi" {
		t.Fatalf("metrics.k8s.io pods: %+v", pm.Items)
	}

	// the built-in view role includes the metrics (aggregated from system:aggregated-metrics-reader)
	if out, err := kubectlCmd(env["KC_RESTRICTED_KUBECONFIG"], "-n", ns, "top", "pods"); err != nil {
		t.Errorf("restricted (view) user: kubectl top pods: %v: %s", err, out)
	}

	apply(t, ns, hpaManifest("cpu", 1, 4, 50))
	waitHPAEvent(t, ns, "cpu", "New size: 4; reason: cpu resource utilization (percentage of request) above target", 90*time.Second)
	waitFor(t, 60*time.Second, "4 replicas available", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "cpu")
		return spec == 4 && avail == 4, fmt.Sprintf("spec %d available %d", spec, avail)
	})

	kubectl(t, "-n", ns, "annotate", "pods", "-l", "app=cpu", "--overwrite", "sim.kubectl-canary.io/behavior=cpu-10pct memory-48Mi")
	waitHPAEvent(t, ns, "cpu", "New size: 1; reason: All metrics below target", 120*time.Second)
	waitFor(t, 60*time.Second, "1 replica", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "cpu")
		return spec == 1 && avail == 1, fmt.Sprintf("spec %d available %d", spec, avail)
	})
	m, err := topPods(ns, "app=cpu")
	if err != nil || len(m) != 1 {
		t.Fatalf("kubectl top after the scale-down: %v %v", m, err)
	}
	for _, v := range m {
		if !within(v[0], 10, 3) {
			t.Errorf("kubectl top after the scale-down: %v, want about 10m", m)
		}
	}
}
