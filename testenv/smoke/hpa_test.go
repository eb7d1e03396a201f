package smoke

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// hpaManifest is an autoscaling/v2 HPA of Deployment name on average CPU utilisation.
func hpaManifest(name string, minReplicas, maxReplicas, cpuPct int) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: %[1]s
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: %[1]s}
  minReplicas: %[2]d
  maxReplicas: %[3]d
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: %[4]d}}
`, name, minReplicas, maxReplicas, cpuPct)
}

// deploymentReplicas is the Deployment's spec.replicas and status.availableReplicas.
func deploymentReplicas(t *testing.T, ns, name string) (spec, available int) {
	t.Helper()
	var d struct {
		Spec struct {
			Replicas int `json:"replicas"`
		} `json:"spec"`
		Status struct {
			AvailableReplicas int `json:"availableReplicas"`
		} `json:"status"`
	}
	getJSON(t, &d, "-n", ns, "get", "deployment", name)
	return d.Spec.Replicas, d.Status.AvailableReplicas
}

// hpaEvents are the messages of the HPA's events (SuccessfulRescale: "New size: N; reason: ...").
func hpaEvents(t *testing.T, ns, name string) []string {
	t.Helper()
	var l struct {
		Items []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"items"`
	}
	getJSON(t, &l, "-n", ns, "get", "events", "--field-selector",
		"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name="+name)
	var out []string
	for _, e := range l.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out
}

func waitHPAEvent(t *testing.T, ns, name, want string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "HPA event "+want, func() (bool, string) {
		ev := hpaEvents(t, ns, name)
		for _, e := range ev {
			if strings.Contains(e, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(ev)
	})
}

// The real HPA controller enforces its bounds: raising minReplicas scales the Deployment
// up, lowering maxReplicas scales it down (as the foreign-actions tests use it).
func TestHPAMinMaxBounds(t *testing.T) {
	ns := newNamespace(t, "hpa")
	apply(t, ns, deployment("web", 2, "nginx:1.15", nil, "")+
		`        resources: {requests: {cpu: 100m, memory: 32Mi}}
`)
	waitRollout(t, ns, "web", 60*time.Second)
	apply(t, ns, hpaManifest("web", 2, 5, 50))

	kubectl(t, "-n", ns, "patch", "hpa", "web", "--type=merge", "-p", `{"spec":{"minReplicas":4}}`)
	waitHPAEvent(t, ns, "web", "New size: 4; reason: Current number of replicas below Spec.MinReplicas", 30*time.Second)
	waitFor(t, 60*time.Second, "4 replicas available", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "web")
		return spec == 4 && avail == 4, fmt.Sprintf("spec %d available %d", spec, avail)
	})

	kubectl(t, "-n", ns, "patch", "hpa", "web", "--type=merge", "-p", `{"spec":{"minReplicas":2,"maxReplicas":3}}`)
	waitHPAEvent(t, ns, "web", "New size: 3; reason: Current number of replicas above Spec.MaxReplicas", 30*time.Second)
	waitFor(t, 60*time.Second, "at most 3 replicas", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "web")
		return spec <= 3 && spec >= 2 && avail == spec, fmt.Sprintf("spec %d available %d", spec, avail)
	})
}
