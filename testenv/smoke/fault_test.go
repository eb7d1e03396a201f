package smoke

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The fault tests stop, freeze and restart components of the environment. scripts/testenv
// smoke runs them (-run '^TestFault', KC_TESTENV_FAULTS=1) only in an environment of their
// own, never in one that other tests may be using.
func requireFaultEnv(t *testing.T) {
	t.Helper()
	loadEnv(t)
	if os.Getenv("KC_TESTENV_FAULTS") != "1" {
		msg := "fault tests restart components; run them through scripts/testenv smoke, which gives them an environment of their own (or set KC_TESTENV_FAULTS=1 for a private one)"
		if os.Getenv("KC_TESTENV_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// fault runs `scripts/testenv fault args...` and returns its stdout, stderr and exit code.
func fault(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	script, err := filepath.Abs("../../scripts/testenv")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, append([]string{"fault"}, args...)...)
	cmd.Env = append(os.Environ(), "KC_TESTENV_DIR="+env["KC_TESTENV_DIR"])
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("scripts/testenv fault %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// mustFault runs a fault command that has to succeed.
func mustFault(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := fault(t, args...)
	if code != 0 {
		t.Fatalf("scripts/testenv fault %v: exit %d: %s%s", args, code, out, errOut)
	}
	t.Logf("fault %v: %s", args, strings.TrimSpace(out))
	return out
}

// apiReachable reports whether a quick request through the admin kubeconfig gets an answer.
func apiReachable() (bool, string) {
	out, err := kubectlErr("get", "--raw", "/readyz", "--request-timeout=1s")
	return err == nil, strings.TrimSpace(out) + fmt.Sprint(err)
}

// scaleAndWait scales a Deployment and waits until that many replicas are available.
func scaleAndWait(t *testing.T, ns, name string, replicas int) {
	t.Helper()
	kubectl(t, "-n", ns, "scale", "deployment/"+name, fmt.Sprintf("--replicas=%d", replicas))
	waitFor(t, 60*time.Second, fmt.Sprintf("%d replicas of %s available", replicas, name), func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, name)
		return spec == replicas && avail == replicas, fmt.Sprintf("spec %d available %d", spec, avail)
	})
}

func resourceVersionOf(t *testing.T, ns, kind, name string) string {
	t.Helper()
	return strings.TrimSpace(kubectl(t, "-n", ns, "get", kind, name, "-o", "jsonpath={.metadata.resourceVersion}"))
}

// watchLines streams a raw watch through kubectl; lines arrive on the channel, which is
// closed when the stream ends.
func watchLines(t *testing.T, path string) <-chan string {
	t.Helper()
	cmd := exec.Command("kubectl", "get", "--raw", path)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env["KUBECONFIG"])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return ch
}

// waitClosed waits until a stream from watchLines has ended.
func waitClosed(t *testing.T, ch <-chan string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("stream still open after %s", timeout)
		}
	}
}

// waitLine waits for a streamed line containing want.
func waitLine(t *testing.T, ch <-chan string, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before a line with %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s", want, timeout)
		}
	}
}

// Usage errors and refusals have their own exit codes and change nothing.
func TestFaultCommandErrors(t *testing.T) {
	requireFaultEnv(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"apiserver-explode"}, 2, `unknown command "apiserver-explode"`},
		{[]string{"apiserver-freeze"}, 2, "needs one argument, SECONDS"},
		{[]string{"apiserver-freeze", "-3"}, 2, "SECONDS must be a number > 0"},
		{[]string{"apiserver-restart", "now"}, 2, "takes no argument"},
		{[]string{"apiserver-start"}, 1, "kube-apiserver is already running"},
		{[]string{"scheduler-thaw"}, 1, "kube-scheduler is not frozen"},
	} {
		out, errOut, code := fault(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("fault %v: exit %d stdout %q stderr %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.msg)
		}
	}
	out := mustFault(t, "status")
	for _, want := range []string{"apiserver running pid", "controller-manager running pid", "scheduler running pid"} {
		if !strings.Contains(out, want) {
			t.Errorf("status %q lacks %q", out, want)
		}
	}
	_, errOut, code := fault(t, "status", "--dir")
	if code != 2 {
		t.Errorf("fault status --dir: exit %d %s", code, errOut)
	}
	if ok, msg := apiReachable(); !ok {
		t.Fatalf("API server unreachable after refused fault commands: %s", msg)
	}
}

// The API server stops and comes back on the same address with the same certificates: the
// old kubeconfig works again, an open watch ends, a watch from a resourceVersion before the
// restart gets 410 Gone, and the controllers, the simulator and Prometheus' discovery carry
// on (a scale completes, the new pods are scraped).
func TestFaultAPIServerRestart(t *testing.T) {
	requireFaultEnv(t)
	ns := newNamespace(t, "fault-api")
	apply(t, ns, deployment("web", 2, "nginx:1.15", map[string]string{"prometheus.io/scrape": "true"}, ""))
	waitRollout(t, ns, "web", 60*time.Second)

	kubectl(t, "-n", ns, "create", "configmap", "before")
	rv0 := resourceVersionOf(t, ns, "configmap", "before")
	watch := watchLines(t, "/api/v1/namespaces/"+ns+"/configmaps?watch=1&resourceVersion="+rv0)
	kubectl(t, "-n", ns, "create", "configmap", "seen")
	waitLine(t, watch, `"name":"seen"`, 20*time.Second)

	mustFault(t, "apiserver-stop")
	if ok, msg := apiReachable(); ok {
		t.Fatalf("API server still answers after apiserver-stop: %s", msg)
	} else if !strings.Contains(msg, "refused") {
		t.Errorf("stopped API server: want connection refused, got %s", msg)
	}
	// the open watch ended with the API server
	waitClosed(t, watch, 10*time.Second)
	mustFault(t, "apiserver-start")
	if ok, msg := apiReachable(); !ok {
		t.Fatalf("API server not reachable with the same kubeconfig after apiserver-start: %s", msg)
	}

	// a watch from before the restart: the new watch cache starts after it
	gone := watchLines(t, "/api/v1/namespaces/"+ns+"/configmaps?watch=1&resourceVersion="+rv0)
	waitLine(t, gone, `"code":410`, 20*time.Second)

	// a crash: SIGKILL, no graceful shutdown; status says stopped until started again
	if out := mustFault(t, "apiserver-kill"); !strings.Contains(out, "kube-apiserver killed") {
		t.Errorf("apiserver-kill: %q", out)
	}
	if out := mustFault(t, "status"); !strings.Contains(out, "apiserver stopped") {
		t.Errorf("status after apiserver-kill: %q", out)
	}
	if ok, msg := apiReachable(); ok {
		t.Fatalf("API server answers after apiserver-kill: %s", msg)
	}
	mustFault(t, "apiserver-start")

	mustFault(t, "apiserver-restart")
	scaleAndWait(t, ns, "web", 4)
	if ok, msg := apiReachable(); !ok {
		t.Fatal(msg)
	}
	// Prometheus' Kubernetes discovery re-watched: the pods created after the restarts are targets
	q := fmt.Sprintf(`count(up{namespace=%q} == 1)`, ns)
	waitFor(t, 30*time.Second, "Prometheus scraping all 4 pods", func() (bool, string) {
		r := promQuery(t, q)
		return len(r) == 1 && fmt.Sprint(r[0].Value[1]) == "4", fmt.Sprint(r)
	})
}

// A frozen API server accepts connections but answers nothing until thawed; the freeze
// command answers once it is thawed.
func TestFaultAPIServerFreeze(t *testing.T) {
	requireFaultEnv(t)
	ns := newNamespace(t, "fault-freeze")
	apply(t, ns, deployment("web", 1, "nginx:1.15", nil, ""))
	waitRollout(t, ns, "web", 60*time.Second)

	start := time.Now()
	done := make(chan string, 1)
	go func() {
		out, errOut, code := fault(t, "apiserver-freeze", "6")
		done <- fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	}()
	frozenMsg := ""
	waitFor(t, 10*time.Second, "the API server to stop answering", func() (bool, string) {
		ok, msg := apiReachable()
		frozenMsg = msg
		return !ok, msg
	})
	if !strings.Contains(frozenMsg, "Timeout") && !strings.Contains(frozenMsg, "deadline") && !strings.Contains(frozenMsg, "timeout") {
		t.Errorf("frozen API server: want a timeout, got %s", frozenMsg)
	}
	t.Logf("frozen API server after %.1fs: %s", time.Since(start).Seconds(), frozenMsg)
	res := <-done
	if !strings.HasPrefix(res, "exit 0") || !strings.Contains(res, "kube-apiserver thawed after 6.0s") {
		t.Fatalf("apiserver-freeze 6: %s", res)
	}
	if el := time.Since(start); el < 6*time.Second {
		t.Errorf("apiserver-freeze 6 answered after %s", el)
	}
	if ok, msg := apiReachable(); !ok {
		t.Fatalf("API server not answering after the thaw: %s", msg)
	}
	// thaw ends a freeze early
	go func() {
		out, errOut, code := fault(t, "apiserver-freeze", "60")
		done <- fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	}()
	waitFor(t, 10*time.Second, "apiserver frozen", func() (bool, string) {
		out, _, _ := fault(t, "status")
		return strings.Contains(out, "apiserver frozen"), out
	})
	mustFault(t, "apiserver-thaw")
	select {
	case res := <-done:
		if !strings.HasPrefix(res, "exit 0") {
			t.Fatalf("apiserver-freeze 60 ended by thaw: %s", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("apiserver-freeze 60 still waiting after apiserver-thaw")
	}
	scaleAndWait(t, ns, "web", 2)
}

// A stopped controller-manager does nothing (a scale waits), a started one catches up; the
// scheduler restarts and schedules again.
func TestFaultControllerManagerAndScheduler(t *testing.T) {
	requireFaultEnv(t)
	ns := newNamespace(t, "fault-kcm")
	apply(t, ns, deployment("web", 2, "nginx:1.15", nil, ""))
	waitRollout(t, ns, "web", 60*time.Second)

	mustFault(t, "controller-manager-stop")
	kubectl(t, "-n", ns, "scale", "deployment/web", "--replicas=4")
	time.Sleep(3 * time.Second)
	if pods := listPods(t, ns, "app=web"); len(pods) != 2 {
		t.Fatalf("%d pods with the controller-manager stopped, want still 2", len(pods))
	}
	mustFault(t, "controller-manager-start")
	waitFor(t, 60*time.Second, "4 replicas available", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "web")
		return avail == 4, fmt.Sprintf("spec %d available %d", spec, avail)
	})
	mustFault(t, "controller-manager-restart")
	scaleAndWait(t, ns, "web", 1)

	mustFault(t, "scheduler-stop")
	kubectl(t, "-n", ns, "scale", "deployment/web", "--replicas=2")
	waitFor(t, 20*time.Second, "an unscheduled pod", func() (bool, string) {
		for _, p := range listPods(t, ns, "app=web") {
			if p.Spec.NodeName == "" {
				return true, ""
			}
		}
		return false, "all scheduled"
	})
	time.Sleep(2 * time.Second)
	for _, p := range listPods(t, ns, "app=web") {
		if p.Spec.NodeName == "" && p.cond("PodScheduled").Status != "" {
			t.Errorf("pod %s has PodScheduled %q with the scheduler stopped", p.Metadata.Name, p.cond("PodScheduled").Status)
		}
	}
	mustFault(t, "scheduler-start")
	waitFor(t, 60*time.Second, "2 replicas available", func() (bool, string) {
		spec, avail := deploymentReplicas(t, ns, "web")
		return avail == 2, fmt.Sprintf("spec %d available %d", spec, avail)
	})
	mustFault(t, "scheduler-restart")
	scaleAndWait(t, ns, "web", 3)
}
