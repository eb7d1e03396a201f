// Package smoke holds the acceptance tests of the test environment. They use the real
// kubectl against a running environment (scripts/testenv up) and are skipped when none is
// running, unless KC_TESTENV_REQUIRED=1, which turns a missing environment into a failure.
package smoke

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var env map[string]string

func loadEnv(t *testing.T) map[string]string {
	t.Helper()
	if env != nil {
		return env
	}
	dir := os.Getenv("KC_TESTENV_DIR")
	if dir == "" {
		dir = "/tmp/kubectl-canary-testenv"
	}
	f, err := os.Open(filepath.Join(dir, "env"))
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "ready"))
	}
	if err != nil {
		if os.Getenv("KC_TESTENV_REQUIRED") == "1" {
			t.Fatalf("test environment not running (%v); start it with scripts/testenv up", err)
		}
		t.Skipf("test environment not running (%v); set KC_TESTENV_REQUIRED=1 to fail instead", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	env = m
	return m
}

var nsSeq int64

// newNamespace creates a namespace for one test and deletes it at the end.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	loadEnv(t)
	ns := fmt.Sprintf("smoke-%s-%d-%d", prefix, time.Now().Unix()%100000, atomic.AddInt64(&nsSeq, 1))
	kubectl(t, "create", "namespace", ns)
	// the ServiceAccount admission plugin needs the namespace's default ServiceAccount
	waitFor(t, 20*time.Second, "default serviceaccount in "+ns, func() (bool, string) {
		_, err := kubectlErr("-n", ns, "get", "serviceaccount", "default")
		return err == nil, fmt.Sprint(err)
	})
	t.Cleanup(func() {
		if os.Getenv("KC_SMOKE_KEEP") == "" {
			_, _ = kubectlErr("delete", "namespace", ns, "--wait=false")
		}
	})
	return ns
}

func kubectlCmd(kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		return out.String() + stderr.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

func kubectlErr(args ...string) (string, error) { return kubectlCmd(env["KUBECONFIG"], args...) }

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func apply(t *testing.T, ns, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "-n", ns, "apply", "-f", "-")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env["KUBECONFIG"])
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v: %s", err, out)
	}
}

func getJSON(t *testing.T, v interface{}, args ...string) {
	t.Helper()
	out := kubectl(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decoding %v: %v", args, err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// minimal API types
type containerState struct {
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		Reason   string `json:"reason"`
		ExitCode int    `json:"exitCode"`
	} `json:"terminated"`
}

type containerStatus struct {
	Name         string         `json:"name"`
	Image        string         `json:"image"`
	ImageID      string         `json:"imageID"`
	Ready        bool           `json:"ready"`
	Started      *bool          `json:"started"`
	RestartCount int            `json:"restartCount"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason"`
	LastTransitionTime string `json:"lastTransitionTime"`
}

type pod struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Image string `json:"image"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase             string            `json:"phase"`
		PodIP             string            `json:"podIP"`
		HostIP            string            `json:"hostIP"`
		StartTime         string            `json:"startTime"`
		Conditions        []condition       `json:"conditions"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

func (p *pod) cond(t string) condition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return condition{}
}

func getPod(t *testing.T, ns, name string) pod {
	t.Helper()
	var p pod
	getJSON(t, &p, "-n", ns, "get", "pod", name)
	return p
}

func listPods(t *testing.T, ns string, selector string) []pod {
	t.Helper()
	var l struct {
		Items []pod `json:"items"`
	}
	args := []string{"-n", ns, "get", "pods"}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	getJSON(t, &l, args...)
	return l.Items
}

func promQuery(t *testing.T, q string) []struct {
	Metric map[string]string `json:"metric"`
	Value  []interface{}     `json:"value"`
} {
	t.Helper()
	base := env["KC_PROMETHEUS_URL"]
	if base == "" {
		t.Fatal("KC_PROMETHEUS_URL is empty")
	}
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []interface{}     `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "success" {
		t.Fatalf("prometheus query %q: %s", q, r.Error)
	}
	return r.Data.Result
}
