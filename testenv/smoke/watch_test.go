package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The pod watch of the StatefulSet and DaemonSet measurements (kinds_test.go): a real watch
// of the API server (`kubectl get --raw .../pods?watch=true`, every ADDED/MODIFIED/DELETED
// event as the API server sends it), so "at no instant more than k pods on the new
// revision" is checked on every change, not on samples.

type watchedPod struct {
	Metadata struct {
		Name              string            `json:"name"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Image string `json:"image"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Conditions []condition `json:"conditions"`
	} `json:"status"`
}

func (p *watchedPod) hash() string { return p.Metadata.Labels["controller-revision-hash"] }

func (p *watchedPod) image() string {
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	return p.Spec.Containers[0].Image
}

func (p *watchedPod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// podEvent is one watch event, reduced.
type podEvent struct {
	Type, Name, UID, Hash, Image, Node string
	Ready                              bool
	At                                 time.Time // when the event arrived
}

type podWatcher struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	pods   map[string]watchedPod // by UID: every pod object that exists (terminating ones too)
	events []podEvent
	// maxBy: the most pods that existed at once with a given label value, per key
	// ("hash=<controller-revision-hash>", "image=<image>")
	maxBy map[string]int
	// minReady: the fewest Ready pods at once since resetMinReady
	minReady int
	err      error
}

// watchPods starts a watch of the pods of ns matching selector, until the test ends.
func watchPods(t *testing.T, ns, selector string) *podWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	path := fmt.Sprintf("/api/v1/namespaces/%s/pods?watch=true&labelSelector=%s", ns, url.QueryEscape(selector))
	cmd := exec.CommandContext(ctx, "kubectl", "get", "--raw", path)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env["KUBECONFIG"])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &podWatcher{t: t, cancel: cancel, done: make(chan struct{}), pods: map[string]watchedPod{}, maxBy: map[string]int{}, minReady: 1 << 30}
	go func() {
		defer close(w.done)
		dec := json.NewDecoder(out)
		for {
			var ev struct {
				Type   string     `json:"type"`
				Object watchedPod `json:"object"`
			}
			if err := dec.Decode(&ev); err != nil {
				w.mu.Lock()
				if ctx.Err() == nil {
					w.err = fmt.Errorf("pod watch ended: %v: %s", err, strings.TrimSpace(stderr.String()))
				}
				w.mu.Unlock()
				_ = cmd.Wait()
				return
			}
			w.apply(ev.Type, ev.Object)
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *podWatcher) stop() {
	w.cancel()
	<-w.done
}

func (w *podWatcher) apply(typ string, p watchedPod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch typ {
	case "ADDED", "MODIFIED":
		w.pods[p.Metadata.UID] = p
	case "DELETED":
		delete(w.pods, p.Metadata.UID)
	default:
		return
	}
	w.events = append(w.events, podEvent{Type: typ, Name: p.Metadata.Name, UID: p.Metadata.UID, Hash: p.hash(),
		Image: p.image(), Node: p.Spec.NodeName, Ready: p.ready(), At: time.Now()})
	count := map[string]int{}
	ready := 0
	for _, q := range w.pods {
		count["hash="+q.hash()]++
		count["image="+q.image()]++
		if q.ready() && q.Metadata.DeletionTimestamp == nil {
			ready++
		}
	}
	for k, n := range count {
		if n > w.maxBy[k] {
			w.maxBy[k] = n
		}
	}
	if ready < w.minReady {
		w.minReady = ready
	}
}

// check fails the test if the watch broke.
func (w *podWatcher) check() {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		w.t.Fatal(w.err)
	}
}

// waitSynced waits until the watch has seen n pods (its initial ADDED events).
func (w *podWatcher) waitSynced(n int) {
	w.t.Helper()
	waitFor(w.t, 20*time.Second, "pod watch sees the existing pods", func() (bool, string) {
		w.check()
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.pods) == n, fmt.Sprintf("%d pods", len(w.pods))
	})
}

// mark returns the number of events so far: events after it are what followed.
func (w *podWatcher) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// resetMax forgets the maxima (of hash/image counts) and the minimum of Ready pods so far;
// both restart from the pods as they are now.
func (w *podWatcher) resetMax() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxBy = map[string]int{}
	w.minReady = 1 << 30
	ready := 0
	for _, q := range w.pods {
		w.maxBy["hash="+q.hash()]++
		w.maxBy["image="+q.image()]++
		if q.ready() && q.Metadata.DeletionTimestamp == nil {
			ready++
		}
	}
	w.minReady = ready
}

func (w *podWatcher) max(key string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxBy[key]
}

func (w *podWatcher) minReadySince() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.minReady
}

// firstSince is the first event since mark that satisfies f (ok false: none yet).
func (w *podWatcher) firstSince(mark int, f func(podEvent) bool) (podEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events[mark:] {
		if f(e) {
			return e, true
		}
	}
	return podEvent{}, false
}

// createdSince lists, in the order the API server reported them, the names of the pods
// created (ADDED) since mark whose event satisfies f.
func (w *podWatcher) createdSince(mark int, f func(podEvent) bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for _, e := range w.events[mark:] {
		if e.Type == "ADDED" && f(e) {
			names = append(names, e.Name)
		}
	}
	return names
}

// byNode: the pods that exist now, per node.
func (w *podWatcher) byNode() map[string][]watchedPod {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string][]watchedPod{}
	for _, p := range w.pods {
		m[p.Spec.NodeName] = append(m[p.Spec.NodeName], p)
	}
	for _, l := range m {
		sort.Slice(l, func(i, j int) bool { return l[i].Metadata.Name < l[j].Metadata.Name })
	}
	return m
}

// byName: the pods that exist now, by name (the newest if two exist with one name).
func (w *podWatcher) byName() map[string]watchedPod {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]watchedPod{}
	for _, p := range w.pods {
		m[p.Metadata.Name] = p
	}
	return m
}
