package smoke

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// promGet decodes a Prometheus API answer's data.
func promGet(t *testing.T, path string, data interface{}) {
	t.Helper()
	resp, err := http.Get(env["KC_PROMETHEUS_URL"] + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("prometheus %s: %v %s", path, err, r.Status)
	}
	if err := json.Unmarshal(r.Data, data); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

// Prometheus (built from its Go module) finds the pods through the real Kubernetes service
// discovery: its targets API lists each pod with the __meta_kubernetes_pod_* labels, it
// reports the pinned release, and its ServiceAccount may only list and watch pods.
func TestPrometheusKubernetesSD(t *testing.T) {
	ns := newNamespace(t, "promsd")
	apply(t, ns, deployment("sd", 2, "nginx:1.15", map[string]string{"prometheus.io/scrape": "true"}, ""))
	waitRollout(t, ns, "sd", 60*time.Second)
	pods := map[string]pod{}
	for _, p := range listPods(t, ns, "app=sd") {
		pods[p.Metadata.Name] = p
	}

	type target struct {
		DiscoveredLabels map[string]string `json:"discoveredLabels"`
		Labels           map[string]string `json:"labels"`
		Health           string            `json:"health"`
	}
	waitFor(t, 30*time.Second, "2 healthy targets with their Kubernetes labels", func() (bool, string) {
		var d struct {
			ActiveTargets []target `json:"activeTargets"`
		}
		promGet(t, "/api/v1/targets?state=active", &d)
		found := 0
		var bad []string
		for _, tg := range d.ActiveTargets {
			if tg.Labels["namespace"] != ns {
				continue
			}
			found++
			m := tg.DiscoveredLabels
			p, ok := pods[m["__meta_kubernetes_pod_name"]]
			want := map[string]string{
				"__meta_kubernetes_namespace":                           ns,
				"__meta_kubernetes_pod_ip":                              p.Status.PodIP,
				"__meta_kubernetes_pod_node_name":                       p.Spec.NodeName,
				"__meta_kubernetes_pod_host_ip":                         p.Status.HostIP,
				"__meta_kubernetes_pod_label_app":                       "sd",
				"__meta_kubernetes_pod_labelpresent_app":                "true",
				"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
				"__meta_kubernetes_pod_container_name":                  "sd",
				"__meta_kubernetes_pod_container_port_number":           "80",
				"__meta_kubernetes_pod_phase":                           "Running",
				"__meta_kubernetes_pod_ready":                           "true",
				"__meta_kubernetes_pod_controller_kind":                 "ReplicaSet",
				"__address__":                                           p.Status.PodIP + ":80",
			}
			for k, v := range want {
				if !ok || m[k] != v {
					bad = append(bad, fmt.Sprintf("%s=%q (want %q)", k, m[k], v))
				}
			}
			if m["__meta_kubernetes_pod_uid"] == "" || !strings.HasPrefix(m["__meta_kubernetes_pod_controller_name"], "sd-") {
				bad = append(bad, fmt.Sprintf("uid %q controller %q", m["__meta_kubernetes_pod_uid"], m["__meta_kubernetes_pod_controller_name"]))
			}
			if tg.Health != "up" || tg.Labels["pod"] != m["__meta_kubernetes_pod_name"] || tg.Labels["app"] != "sd" {
				bad = append(bad, fmt.Sprintf("health %q labels %v", tg.Health, tg.Labels))
			}
		}
		return found == 2 && len(bad) == 0, fmt.Sprintf("%d targets; %v", found, bad)
	})

	// the release of the pinned module (its VERSION file), as stamped by scripts/testenv
	gl := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus")
	gl.Dir = filepath.Join("..", "prometheus")
	dir, err := gl.Output()
	if err != nil {
		t.Fatalf("go list prometheus module: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	var bi struct {
		Version string `json:"version"`
	}
	promGet(t, "/api/v1/status/buildinfo", &bi)
	if bi.Version != strings.TrimSpace(string(want)) {
		t.Errorf("prometheus buildinfo version %q, want %q", bi.Version, strings.TrimSpace(string(want)))
	}

	// least privilege: list and watch pods, nothing else
	sa := "--as=system:serviceaccount:kube-system:prometheus"
	for _, c := range []struct {
		verb, resource string
		allowed        bool
	}{{"list", "pods", true}, {"watch", "pods", true}, {"get", "pods", false}, {"delete", "pods", false},
		{"list", "secrets", false}, {"list", "nodes", false}, {"create", "pods", false}} {
		out, _ := kubectlErr("auth", "can-i", c.verb, c.resource, "--all-namespaces", sa)
		if got := strings.TrimSpace(out) == "yes"; got != c.allowed {
			t.Errorf("prometheus may %s %s: %q, want allowed=%v", c.verb, c.resource, strings.TrimSpace(out), c.allowed)
		}
	}
}

// Prometheus is reachable as a cluster runs it behind the Prometheus Operator: the Service
// monitoring/prometheus-operated, labelled as Prometheus, through the API server's service
// proxy; and the simulated pods export the request-metric family their metrics-<family>
// token chooses, each scraped under its own names.
func TestPrometheusServiceAndMetricFamilies(t *testing.T) {
	ns := newNamespace(t, "promfam") // loads the environment too
	waitFor(t, 30*time.Second, "buildinfo through the service proxy", func() (bool, string) {
		out, err := kubectlErr("get", "--raw", "/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy/api/v1/status/buildinfo")
		return err == nil && strings.Contains(out, `"status":"success"`) && strings.Contains(out, `"version"`), out
	})
	labelled := kubectl(t, "get", "services", "-A", "-l", "app.kubernetes.io/name=prometheus", "-o", "name")
	if strings.TrimSpace(labelled) != "service/prometheus-operated" {
		t.Fatalf("services labelled as Prometheus: %q", labelled)
	}
	scrape := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "80"}
	families := map[string]string{
		"prom":       "http_requests_total",
		"otel":       "http_server_request_duration_seconds_count",
		"micrometer": "http_server_requests_seconds_count",
		"none":       "process_start_time_seconds",
	}
	for family := range families {
		image := "nginx:1.15__errors-50__metrics-" + family
		if family == "prom" {
			image = "nginx:1.15__errors-50"
		}
		apply(t, ns, deployment("m-"+family, 1, image, scrape, ""))
	}
	for family, metric := range families {
		waitRollout(t, ns, "m-"+family, 60*time.Second)
		// Every series of the pod, by name: its own family and no other.
		q := fmt.Sprintf(`count by (__name__) ({namespace=%q,app="m-%s",__name__=~"http_.+|process_start_time_seconds"})`, ns, family)
		waitFor(t, 45*time.Second, family+" series", func() (bool, string) {
			names := map[string]bool{}
			for _, s := range promQuery(t, q) {
				names[s.Metric["__name__"]] = true
			}
			if !names[metric] || !names["process_start_time_seconds"] {
				return false, fmt.Sprint(names)
			}
			for name := range names {
				for other, m := range families {
					if other != family && other != "none" && name == m {
						return false, fmt.Sprintf("%s exports %s too: %v", family, name, names)
					}
				}
			}
			return true, ""
		})
	}
	// The OpenTelemetry pod's errors are in its status-code label.
	eq := fmt.Sprintf(`sum(rate(http_server_request_duration_seconds_count{namespace=%q,http_response_status_code="500"}[10s])) / sum(rate(http_server_request_duration_seconds_count{namespace=%q}[10s]))`, ns, ns)
	waitFor(t, 30*time.Second, "otel error ratio near 0.5", func() (bool, string) {
		r := promQuery(t, eq)
		if len(r) != 1 {
			return false, fmt.Sprint(r)
		}
		var v float64
		fmt.Sscan(fmt.Sprint(r[0].Value[1]), &v)
		return v > 0.2 && v < 0.8, fmt.Sprint(v)
	})
}
