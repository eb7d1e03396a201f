package smoke

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type trafficSummary struct {
	Requests int                       `json:"requests"`
	Failed   int                       `json:"failed"`
	ByImage  map[string]int            `json:"byImage"`
	ByPod    map[string]int            `json:"byPod"`
	BySource map[string]map[string]int `json:"bySource"`
}

type trafficLine struct {
	Source string `json:"src"`
	Pod    string `json:"pod"`
	Code   int    `json:"code"`
	Err    string `json:"err"`
}

// traffic runs `$KC_TESTENV_BIN traffic` (requests from inside the pod namespace) and
// returns its summary and, per source address, the pods that answered it.
func traffic(t *testing.T, args ...string) (trafficSummary, map[string]map[string]int, error) {
	t.Helper()
	log := filepath.Join(t.TempDir(), "requests.jsonl")
	cmd := exec.Command(env["KC_TESTENV_BIN"], append([]string{"traffic", "--netns", env["KC_POD_NETNS"],
		"--pod-subnet", env["KC_POD_SUBNET"], "--log", log}, args...)...)
	out, err := cmd.Output()
	var sum trafficSummary
	if err != nil {
		return sum, nil, fmt.Errorf("traffic %v: %v: %s", args, err, out)
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return sum, nil, fmt.Errorf("traffic summary %q: %v", out, err)
	}
	f, err := os.Open(log)
	if err != nil {
		return sum, nil, err
	}
	defer f.Close()
	pods := map[string]map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l trafficLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return sum, nil, err
		}
		if pods[l.Source] == nil {
			pods[l.Source] = map[string]int{}
		}
		pods[l.Source][l.Pod]++
	}
	return sum, pods, nil
}

// sources returns n client addresses of the pod subnet's synthetic-client block (.250.x).
func sources(n int) string {
	prefix := strings.Join(strings.Split(env["KC_POD_SUBNET"], ".")[:2], ".")
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s.250.%d", prefix, 100+i))
	}
	return strings.Join(out, ",")
}

// TestClusterIPThroughKubeProxy: the real kube-proxy runs in the pod namespace, so a client
// there reaches a Service's ClusterIP and kube-proxy's rules spread new connections over
// every Ready pod; with sessionAffinity ClientIP each client address stays on one pod.
func TestClusterIPThroughKubeProxy(t *testing.T) {
	ns := newNamespace(t, "kubeproxy")
	apply(t, ns, deployment("web", 4, "nginx:1.14", nil, ""))
	kubectl(t, "-n", ns, "expose", "deployment/web", "--port=8080", "--target-port=80")
	waitRollout(t, ns, "web", 60*time.Second)
	ip := strings.TrimSpace(kubectl(t, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
	target := ip + ":8080"
	waitFor(t, 20*time.Second, "a request to the ClusterIP answered", func() (bool, string) {
		sum, _, err := traffic(t, "--target", target, "--requests", "1")
		return err == nil && sum.Failed == 0 && sum.Requests == 1, fmt.Sprint(sum, err)
	})

	sum, _, err := traffic(t, "--target", target, "--requests", "2000", "--sources", sources(4))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 || sum.Requests != 2000 || len(sum.ByPod) != 4 {
		t.Fatalf("2000 requests to %s: %+v; want no failure and all 4 pods answering", target, sum)
	}
	for pod, n := range sum.ByPod {
		// 500 expected each; a binomial standard deviation is about 19
		if n < 350 || n > 650 {
			t.Errorf("pod %s answered %d of 2000 requests; kube-proxy should spread them evenly (%+v)", pod, n, sum.ByPod)
		}
	}

	kubectl(t, "-n", ns, "patch", "service", "web", "-p",
		`{"spec":{"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":300}}}}`)
	// kube-proxy applies the change within its sync period
	waitFor(t, 20*time.Second, "every client on one pod", func() (bool, string) {
		_, bySource, err := traffic(t, "--target", target, "--requests", "80", "--sources", sources(8))
		for _, pods := range bySource {
			if len(pods) != 1 {
				return false, fmt.Sprint(bySource)
			}
		}
		return err == nil, fmt.Sprint(err)
	})
	sum, bySource, err := traffic(t, "--target", target, "--requests", "1600", "--sources", sources(8))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 || len(bySource) != 8 {
		t.Fatalf("1600 requests from 8 sources: %+v", sum)
	}
	for src, pods := range bySource {
		if len(pods) != 1 {
			t.Errorf("with sessionAffinity ClientIP, client %s was answered by %d pods: %v", src, len(pods), pods)
		}
	}

	if out, err := exec.Command(env["KC_TESTENV_BIN"], "traffic", "--netns", env["KC_POD_NETNS"], "--pod-subnet",
		env["KC_POD_SUBNET"], "--target", "192.0.2.1:80", "--requests", "1").CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "only IPv4 addresses of the environment") {
		t.Errorf("a target outside the environment must be refused: %v: %s", err, out)
	}
}
