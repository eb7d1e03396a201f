package smoke

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// StatefulSets and DaemonSets on the real controllers (docs/ARCHITECTURE.md, "StatefulSet and
// DaemonSet controllers: measured"): each test asserts the facts that section cites, so a
// change of the controllers' behaviour fails here.

type stsObj struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration int64  `json:"observedGeneration"`
		Replicas           int    `json:"replicas"`
		ReadyReplicas      int    `json:"readyReplicas"`
		CurrentReplicas    int    `json:"currentReplicas"`
		UpdatedReplicas    int    `json:"updatedReplicas"`
		AvailableReplicas  int    `json:"availableReplicas"`
		CurrentRevision    string `json:"currentRevision"`
		UpdateRevision     string `json:"updateRevision"`
	} `json:"status"`
}

func (s stsObj) synced() bool { return s.Status.ObservedGeneration == s.Metadata.Generation }

func (s stsObj) String() string { return fmt.Sprintf("gen %d %+v", s.Metadata.Generation, s.Status) }

func statefulSet(name string, replicas, partition int, image, policy, storageClass string) string {
	sc := ""
	if storageClass != "" {
		sc = "\n      storageClassName: " + storageClass
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  serviceName: %[1]s
  podManagementPolicy: %[5]s
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {partition: %[3]d}
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: %[1]s
        image: %[4]s
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}%[6]s
`, name, replicas, partition, image, policy, sc)
}

func getSts(t *testing.T, ns, name string) stsObj {
	t.Helper()
	var s stsObj
	getJSON(t, &s, "-n", ns, "get", "statefulset", name)
	return s
}

func waitSts(t *testing.T, ns, name string, timeout time.Duration, what string, f func(stsObj) bool) stsObj {
	t.Helper()
	var s stsObj
	waitFor(t, timeout, "statefulset "+name+": "+what, func() (bool, string) {
		s = getSts(t, ns, name)
		return s.synced() && f(s), s.String()
	})
	return s
}

// holdsFor fails the test if f turns false within d: an observation window for a negative
// fact ("the controller does not replace the pod"), checked every 250 ms.
func holdsFor(t *testing.T, d time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if ok, msg := f(); !ok {
			t.Fatalf("%s: no longer true after %s: %s", what, d-time.Until(end), msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func names(prefix string, ordinals ...int) []string {
	var l []string
	for _, i := range ordinals {
		l = append(l, fmt.Sprintf("%s-%d", prefix, i))
	}
	return l
}

// Acceptance: a StatefulSet with volumeClaimTemplates gets its pods Ready with PVCs bound by the
// real PersistentVolume binder (the default class testenv-hostpath, Immediate) and through the
// scheduler's VolumeBinding PreBind (testenv-hostpath-wffc, WaitForFirstConsumer).
func TestStatefulSetVolumeClaims(t *testing.T) {
	ns := newNamespace(t, "stspvc")
	apply(t, ns, statefulSet("db", 3, 0, "db:v1", "OrderedReady", ""))
	apply(t, ns, statefulSet("wf", 2, 0, "db:v1", "OrderedReady", "testenv-hostpath-wffc"))
	for _, c := range []struct {
		name, class string
		replicas    int
	}{{"db", "testenv-hostpath", 3}, {"wf", "testenv-hostpath-wffc", 2}} {
		waitSts(t, ns, c.name, 90*time.Second, "all Ready", func(s stsObj) bool { return s.Status.ReadyReplicas == c.replicas })
		for i := 0; i < c.replicas; i++ {
			podName := fmt.Sprintf("%s-%d", c.name, i)
			claim := "data-" + podName
			var pvc struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
				Spec struct {
					StorageClassName string `json:"storageClassName"`
					VolumeName       string `json:"volumeName"`
				} `json:"spec"`
				Status struct {
					Phase string `json:"phase"`
				} `json:"status"`
			}
			getJSON(t, &pvc, "-n", ns, "get", "pvc", claim)
			if pvc.Status.Phase != "Bound" || pvc.Spec.StorageClassName != c.class || pvc.Spec.VolumeName == "" {
				t.Fatalf("pvc %s: phase %q class %q volume %q", claim, pvc.Status.Phase, pvc.Spec.StorageClassName, pvc.Spec.VolumeName)
			}
			var pv struct {
				Spec struct {
					ClaimRef struct{ Namespace, Name string } `json:"claimRef"`
					HostPath struct{ Path string }            `json:"hostPath"`
				} `json:"spec"`
				Status struct{ Phase string } `json:"status"`
			}
			getJSON(t, &pv, "get", "pv", pvc.Spec.VolumeName)
			if pv.Status.Phase != "Bound" || pv.Spec.ClaimRef.Namespace != ns || pv.Spec.ClaimRef.Name != claim ||
				!strings.HasPrefix(pv.Spec.HostPath.Path, "/tmp/hostpath_pv/") {
				t.Fatalf("pv %s of %s: %+v", pvc.Spec.VolumeName, claim, pv)
			}
			p := getPod(t, ns, podName)
			if p.cond("Ready").Status != "True" {
				t.Fatalf("pod %s not Ready", podName)
			}
			vol := kubectl(t, "-n", ns, "get", "pod", podName, "-o", "jsonpath={.spec.volumes[?(@.name=='data')].persistentVolumeClaim.claimName}")
			if vol != claim {
				t.Fatalf("pod %s volume data is claim %q, want %q", podName, vol, claim)
			}
			// WaitForFirstConsumer: the scheduler chose the node first and told the binder
			if sel := pvc.Metadata.Annotations["volume.kubernetes.io/selected-node"]; c.class == "testenv-hostpath-wffc" && sel != p.Spec.NodeName {
				t.Fatalf("pvc %s selected-node %q, pod on %q", claim, sel, p.Spec.NodeName)
			}
		}
	}
}

// Acceptance + measured: partition = replicas - k with a new template updates exactly the k
// highest ordinals, highest first, never more than k pods on the new revision at once; the
// status and the pods' controller-revision-hash show it; partition 0 then updates the rest in
// decreasing ordinal order, one at a time.
func TestStatefulSetPartitionUpdatesHighestOrdinals(t *testing.T) {
	ns := newNamespace(t, "stspart")
	apply(t, ns, statefulSet("db", 5, 3, "db:v1", "OrderedReady", ""))
	s := waitSts(t, ns, "db", 90*time.Second, "5 Ready", func(s stsObj) bool { return s.Status.ReadyReplicas == 5 })
	rev1 := s.Status.CurrentRevision
	if rev1 == "" || s.Status.UpdateRevision != rev1 || s.Status.UpdatedReplicas != 5 || s.Status.CurrentReplicas != 5 {
		t.Fatalf("initial status: %s", s)
	}
	if !strings.HasPrefix(rev1, "db-") {
		t.Fatalf("revision %q is not <name>-<hash>", rev1)
	}
	w := watchPods(t, ns, "app=db")
	w.waitSynced(5)
	for name, p := range w.byName() {
		if p.hash() != rev1 {
			t.Fatalf("pod %s controller-revision-hash %q, status.currentRevision %q", name, p.hash(), rev1)
		}
	}
	w.resetMax()
	mark := w.mark()

	kubectl(t, "-n", ns, "set", "image", "statefulset/db", "db=db:v2")
	s = waitSts(t, ns, "db", 60*time.Second, "ordinals 3 and 4 updated and Ready", func(s stsObj) bool {
		return s.Status.UpdatedReplicas == 2 && s.Status.ReadyReplicas == 5
	})
	rev2 := s.Status.UpdateRevision
	if rev2 == rev1 || s.Status.CurrentRevision != rev1 || s.Status.CurrentReplicas != 3 || s.Status.Replicas != 5 {
		t.Fatalf("status with partition 3: %s (rev1 %s)", s, rev1)
	}
	pods := w.byName()
	for i := 0; i < 5; i++ {
		p := pods[fmt.Sprintf("db-%d", i)]
		wantRev, wantImg := rev1, "db:v1"
		if i >= 3 {
			wantRev, wantImg = rev2, "db:v2"
		}
		if p.hash() != wantRev || p.image() != wantImg || !p.ready() {
			t.Fatalf("db-%d: hash %q image %q ready %v, want %q %q", i, p.hash(), p.image(), p.ready(), wantRev, wantImg)
		}
	}
	if got := w.createdSince(mark, func(e podEvent) bool { return e.Hash == rev2 }); !reflect.DeepEqual(got, names("db", 4, 3)) {
		t.Fatalf("pods created on the new revision, in order: %v", got)
	}
	if m := w.max("hash=" + rev2); m != 2 {
		t.Fatalf("at most %d pods on the new revision at once, want 2", m)
	}
	if m := w.minReadySince(); m != 4 {
		t.Fatalf("fewest Ready pods during the update: %d, want 4 (one at a time)", m)
	}

	w.resetMax()
	mark = w.mark()
	kubectl(t, "-n", ns, "patch", "statefulset", "db", "-p", `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}`)
	s = waitSts(t, ns, "db", 60*time.Second, "all updated", func(s stsObj) bool {
		return s.Status.UpdatedReplicas == 5 && s.Status.ReadyReplicas == 5 && s.Status.CurrentRevision == rev2
	})
	if s.Status.UpdateRevision != rev2 || s.Status.CurrentReplicas != 5 {
		t.Fatalf("status after partition 0: %s", s)
	}
	if got := w.createdSince(mark, func(e podEvent) bool { return e.Hash == rev2 }); !reflect.DeepEqual(got, names("db", 2, 1, 0)) {
		t.Fatalf("partition 0: pods created on the new revision, in order: %v", got)
	}
	if m := w.minReadySince(); m != 4 {
		t.Fatalf("fewest Ready pods during partition 0: %d, want 4", m)
	}
	w.check()
}

// Measured: reverting the template while partition holds part of the pods on the new revision
// makes the old revision the update revision again (the same ControllerRevision name) and
// rolls the updated ordinals back, highest first.
func TestStatefulSetRevertTemplate(t *testing.T) {
	ns := newNamespace(t, "stsrevert")
	apply(t, ns, statefulSet("db", 4, 2, "db:v1", "OrderedReady", ""))
	s := waitSts(t, ns, "db", 90*time.Second, "4 Ready", func(s stsObj) bool { return s.Status.ReadyReplicas == 4 })
	rev1 := s.Status.CurrentRevision
	kubectl(t, "-n", ns, "set", "image", "statefulset/db", "db=db:v2")
	s = waitSts(t, ns, "db", 60*time.Second, "2 updated", func(s stsObj) bool {
		return s.Status.UpdatedReplicas == 2 && s.Status.ReadyReplicas == 4
	})
	rev2 := s.Status.UpdateRevision
	w := watchPods(t, ns, "app=db")
	w.waitSynced(4)
	mark := w.mark()
	kubectl(t, "-n", ns, "set", "image", "statefulset/db", "db=db:v1")
	s = waitSts(t, ns, "db", 60*time.Second, "rolled back", func(s stsObj) bool {
		return s.Status.UpdateRevision == rev1 && s.Status.UpdatedReplicas == 4 && s.Status.ReadyReplicas == 4
	})
	if s.Status.CurrentRevision != rev1 || s.Status.CurrentReplicas != 4 {
		t.Fatalf("status after the revert: %s (rev1 %s rev2 %s)", s, rev1, rev2)
	}
	if got := w.createdSince(mark, func(e podEvent) bool { return e.Hash == rev1 }); !reflect.DeepEqual(got, names("db", 3, 2)) {
		t.Fatalf("pods rolled back, in order: %v", got)
	}
	// both revisions stay in the history; the reverted-to one got the next revision number
	out := kubectl(t, "-n", ns, "get", "controllerrevisions", "-o", "jsonpath={range .items[*]}{.metadata.name}={.revision} {end}")
	revs := map[string]string{}
	for _, f := range strings.Fields(out) {
		k, v, _ := strings.Cut(f, "=")
		revs[k] = v
	}
	if len(revs) != 2 || revs[rev1] != "3" || revs[rev2] != "2" {
		t.Fatalf("controller revisions %v (rev1 %s rev2 %s)", revs, rev1, rev2)
	}
	w.check()
}

// Measured: the forced-rollback trap. The canary ordinal (partition = replicas-1) gets a
// template whose pod never becomes Ready; the template is reverted. With OrderedReady the
// controller waits for the broken pod to become Ready before it does anything else, so it never
// replaces it (until someone deletes the pod); with Parallel it replaces it at once.
func TestStatefulSetForcedRollback(t *testing.T) {
	for _, c := range []struct {
		policy, token string
		replaced      bool
	}{
		{"OrderedReady", "never-ready", false},
		{"OrderedReady", "crashloop", false},
		{"Parallel", "never-ready", true},
		{"Parallel", "crashloop", true},
	} {
		t.Run(c.policy+"/"+c.token, func(t *testing.T) {
			ns := newNamespace(t, "stsfr")
			apply(t, ns, statefulSet("db", 3, 2, "db:v1", c.policy, ""))
			s := waitSts(t, ns, "db", 90*time.Second, "3 Ready", func(s stsObj) bool { return s.Status.ReadyReplicas == 3 })
			rev1 := s.Status.CurrentRevision
			kubectl(t, "-n", ns, "set", "image", "statefulset/db", "db=db:v2__"+c.token)
			s = waitSts(t, ns, "db", 60*time.Second, "db-2 on the broken revision", func(s stsObj) bool {
				return s.Status.UpdatedReplicas == 1 && s.Status.ReadyReplicas == 2
			})
			rev2 := s.Status.UpdateRevision
			var stuck pod
			waitFor(t, 30*time.Second, "db-2 running the broken template", func() (bool, string) {
				stuck = getPod(t, ns, "db-2")
				return stuck.Metadata.Labels["controller-revision-hash"] == rev2 && len(stuck.Status.ContainerStatuses) == 1 &&
					stuck.cond("Ready").Status == "False", fmt.Sprint(stuck.Metadata.Labels, stuck.Status.ContainerStatuses)
			})
			uid := kubectl(t, "-n", ns, "get", "pod", "db-2", "-o", "jsonpath={.metadata.uid}")
			start := time.Now()
			kubectl(t, "-n", ns, "set", "image", "statefulset/db", "db=db:v1")
			s = waitSts(t, ns, "db", 30*time.Second, "update revision back to the old one", func(s stsObj) bool {
				return s.Status.UpdateRevision == rev1
			})
			recovered := func() (bool, string) {
				p := getPod(t, ns, "db-2")
				u := kubectl(t, "-n", ns, "get", "pod", "db-2", "-o", "jsonpath={.metadata.uid}")
				return u != uid && p.Metadata.Labels["controller-revision-hash"] == rev1 && p.cond("Ready").Status == "True",
					fmt.Sprintf("uid %s hash %s ready %s", u, p.Metadata.Labels["controller-revision-hash"], p.cond("Ready").Status)
			}
			if c.replaced {
				waitFor(t, 30*time.Second, "db-2 replaced on the old revision", recovered)
				t.Logf("%s: db-2 replaced and Ready %.1fs after the revert", c.policy, time.Since(start).Seconds())
			} else {
				// the status says the revert was seen: updatedReplicas counts db-0 and db-1
				if s.Status.UpdatedReplicas != 2 || s.Status.ReadyReplicas != 2 || s.Status.CurrentRevision != rev1 {
					t.Fatalf("status after the revert: %s", s)
				}
				holdsFor(t, 5*time.Second, "db-2 stays the broken pod", func() (bool, string) {
					p := getPod(t, ns, "db-2")
					u := kubectl(t, "-n", ns, "get", "pod", "db-2", "-o", "jsonpath={.metadata.uid}")
					return u == uid && p.Metadata.Labels["controller-revision-hash"] == rev2,
						fmt.Sprintf("uid %s hash %s", u, p.Metadata.Labels["controller-revision-hash"])
				})
				// the way out: delete the stuck pod; it comes back on the old revision
				kubectl(t, "-n", ns, "delete", "pod", "db-2", "--wait=false")
				waitFor(t, 30*time.Second, "db-2 recreated on the old revision", recovered)
			}
			waitSts(t, ns, "db", 30*time.Second, "3 Ready on the old revision", func(s stsObj) bool {
				return s.Status.ReadyReplicas == 3 && s.Status.UpdatedReplicas == 3 && s.Status.CurrentRevision == rev1
			})
		})
	}
}

// --- DaemonSets

type dsObj struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration     int64 `json:"observedGeneration"`
		DesiredNumberScheduled int   `json:"desiredNumberScheduled"`
		CurrentNumberScheduled int   `json:"currentNumberScheduled"`
		UpdatedNumberScheduled int   `json:"updatedNumberScheduled"`
		NumberReady            int   `json:"numberReady"`
		NumberAvailable        int   `json:"numberAvailable"`
		NumberUnavailable      int   `json:"numberUnavailable"`
	} `json:"status"`
}

func (d dsObj) String() string { return fmt.Sprintf("gen %d %+v", d.Metadata.Generation, d.Status) }

func waitDs(t *testing.T, ns, name string, timeout time.Duration, what string, f func(dsObj) bool) dsObj {
	t.Helper()
	var d dsObj
	waitFor(t, timeout, "daemonset "+name+": "+what, func() (bool, string) {
		getJSON(t, &d, "-n", ns, "get", "daemonset", name)
		return d.Status.ObservedGeneration == d.Metadata.Generation && f(d), d.String()
	})
	return d
}

// daemonSet: pool "" runs on the environment's own nodes; otherwise only on the nodes of that
// pool (addNodes), whose taint it tolerates.
func daemonSet(name, pool, image, strategy string, minReady int) string {
	placement := ""
	if pool != "" {
		placement = fmt.Sprintf(`      nodeSelector: {sim.kubectl-canary.io/pool: %[1]s}
      tolerations: [{key: sim.kubectl-canary.io/pool, operator: Equal, value: %[1]s, effect: NoSchedule}]
`, pool)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %[1]s
spec:
  minReadySeconds: %[5]d
  updateStrategy: %[4]s
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
%[6]s      containers:
      - name: agent
        image: %[3]s
`, name, pool, image, strategy, minReady, placement)
}

// addNodes adds n simulated nodes for this test (podsim adopts Nodes labelled
// sim.kubectl-canary.io/node=true), in pool ns: labelled sim.kubectl-canary.io/pool=ns and
// tainted sim.kubectl-canary.io/pool=ns:NoSchedule, so that no other workload lands on them. At
// the end of the test the namespace's DaemonSets and pods are deleted first, then the nodes.
func addNodes(t *testing.T, ns string, first, n int) []string {
	t.Helper()
	var l []string
	var b strings.Builder
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("%s-n%d", ns, i)
		l = append(l, name)
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Node
metadata:
  name: %[1]s
  labels: {sim.kubectl-canary.io/node: "true", sim.kubectl-canary.io/pool: %[2]s, kubernetes.io/hostname: %[1]s, kubernetes.io/os: linux}
spec:
  taints: [{key: sim.kubectl-canary.io/pool, value: %[2]s, effect: NoSchedule}]
`, name, ns)
	}
	apply(t, "default", b.String())
	if first == 0 && os.Getenv("KC_SMOKE_KEEP") == "" {
		t.Cleanup(func() {
			_, _ = kubectlErr("-n", ns, "delete", "daemonsets", "--all", "--wait=true", "--timeout=60s")
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				out, err := kubectlErr("-n", ns, "get", "pods", "-o", "name")
				if err == nil && strings.TrimSpace(out) == "" {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			_, _ = kubectlErr("delete", "nodes", "-l", "sim.kubectl-canary.io/pool="+ns, "--wait=false")
		})
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d nodes Ready without the not-ready taint", n), func() (bool, string) {
		for _, name := range l {
			out, err := kubectlErr("get", "node", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints[*].key}`)
			if err != nil || !strings.HasPrefix(out, "True") || strings.Contains(out, "node.kubernetes.io/not-ready") {
				return false, name + ": " + out + fmt.Sprint(err)
			}
		}
		return true, ""
	})
	return l
}

// Acceptance: a DaemonSet gets one Ready pod on every schedulable node of the environment.
func TestDaemonSetOnEveryNode(t *testing.T) {
	ns := newNamespace(t, "dsall")
	apply(t, ns, daemonSet("agent", "", "agent:v1", "{type: RollingUpdate}", 0))
	var nodes []string
	waitFor(t, 60*time.Second, "one Ready pod per schedulable node", func() (bool, string) {
		// schedulable: not cordoned, no NoSchedule/NoExecute taint (other tests' nodes have one)
		out := kubectl(t, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.unschedulable} {.spec.taints[*].effect}{"\n"}{end}`)
		nodes = nil
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 1 {
				nodes = append(nodes, f[0])
			}
		}
		var d dsObj
		getJSON(t, &d, "-n", ns, "get", "daemonset", "agent")
		perNode := map[string]int{}
		for _, p := range listPods(t, ns, "app=agent") {
			if p.cond("Ready").Status == "True" {
				perNode[p.Spec.NodeName]++
			}
		}
		for _, n := range nodes {
			if perNode[n] != 1 {
				return false, fmt.Sprintf("node %s: %d Ready pods (%v; %s)", n, perNode[n], perNode, d)
			}
		}
		return len(perNode) == len(nodes) && d.Status.DesiredNumberScheduled == len(nodes) && d.Status.NumberReady == len(nodes),
			fmt.Sprintf("nodes %v pods %v %s", nodes, perNode, d)
	})
	if len(nodes) < 3 {
		t.Fatalf("only %d schedulable nodes: %v", len(nodes), nodes)
	}
	t.Logf("one Ready pod on each of %d nodes", len(nodes))
}

// readyFor waits until every pod of the watch has been Ready for at least d (by the watch's
// own clock: the time of the event that made it Ready).
func readyFor(t *testing.T, w *podWatcher, n int, d time.Duration) {
	t.Helper()
	waitFor(t, d+30*time.Second, fmt.Sprintf("%d pods Ready for %s", n, d), func() (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		since := map[string]time.Time{}
		for _, e := range w.events {
			if !e.Ready {
				delete(since, e.UID)
			} else if _, ok := since[e.UID]; !ok {
				since[e.UID] = e.At
			}
		}
		old := 0
		for uid := range w.pods {
			if t0, ok := since[uid]; ok && time.Since(t0) >= d {
				old++
			}
		}
		return old == n && len(w.pods) == n, fmt.Sprintf("%d of %d", old, len(w.pods))
	})
}

func countImage(w *podWatcher, image string) int {
	n := 0
	for _, p := range w.byName() {
		if p.image() == image {
			n++
		}
	}
	return n
}

// Measured: RollingUpdate with maxSurge k, maxUnavailable 0 and minReadySeconds M on 10 nodes:
// exactly k nodes get a new pod beside the old one, and nothing else happens until the new pods
// have been Ready for M; then the next k (it keeps going, k at a time). maxSurge 15% of 10 is 2
// (rounded up). A node added during the hold gets the new revision at once (not counted in the
// surge).
func TestDaemonSetSurgeHold(t *testing.T) {
	const minReady = 10
	ns := newNamespace(t, "dssurge")
	addNodes(t, ns, 0, 10)
	type dsCase struct {
		name, surge string
		k           int
		w           *podWatcher
		mark        int
	}
	cases := []*dsCase{{name: "int", surge: "1", k: 1}, {name: "pct", surge: `"15%"`, k: 2}}
	for _, c := range cases {
		apply(t, ns, daemonSet(c.name, ns, "agent:v1", fmt.Sprintf("{type: RollingUpdate, rollingUpdate: {maxSurge: %s, maxUnavailable: 0}}", c.surge), 0))
		c.w = watchPods(t, ns, "app="+c.name)
	}
	for _, c := range cases {
		waitDs(t, ns, c.name, 60*time.Second, "10 available", func(d dsObj) bool { return d.Status.NumberAvailable == 10 })
		// the old pods must count as available under the new minReadySeconds too (see
		// TestDaemonSetMinReadySecondsRaisedWithTemplate for what happens otherwise)
		readyFor(t, c.w, 10, minReady*time.Second)
	}
	for _, c := range cases {
		c.w.resetMax()
		c.mark = c.w.mark()
		kubectl(t, "-n", ns, "patch", "daemonset", c.name, "-p",
			fmt.Sprintf(`{"spec":{"minReadySeconds":%d,"template":{"spec":{"containers":[{"name":"agent","image":"agent:v2"}]}}}}`, minReady))
	}
	// the first k new pods, Ready
	for _, c := range cases {
		waitFor(t, 30*time.Second, c.name+": first new pods Ready", func() (bool, string) {
			n := 0
			for _, p := range c.w.byName() {
				if p.image() == "agent:v2" && p.ready() {
					n++
				}
			}
			return n == c.k, fmt.Sprint(n)
		})
	}
	// a node joins during the hold
	extra := addNodes(t, ns, 10, 1)[0]
	for _, c := range cases {
		waitFor(t, 30*time.Second, c.name+": a pod on the added node", func() (bool, string) {
			l := c.w.byNode()[extra]
			return len(l) == 1 && l[0].ready(), fmt.Sprint(len(l))
		})
		if img := c.w.byNode()[extra][0].image(); img != "agent:v2" {
			t.Fatalf("%s: the node added during the hold got %s", c.name, img)
		}
	}
	// the hold: until the first new pods have been Ready for minReadySeconds (less a margin),
	// exactly k surge pods beside 10 old ones (+1 new on the added node)
	for _, c := range cases {
		first, _ := c.w.firstSince(c.mark, func(e podEvent) bool { return e.Image == "agent:v2" && e.Ready })
		holdUntil := first.At.Add(minReady*time.Second - 1500*time.Millisecond)
		holdsFor(t, time.Until(holdUntil), c.name+": k new pods, old pods kept", func() (bool, string) {
			v1, v2 := countImage(c.w, "agent:v1"), countImage(c.w, "agent:v2")
			return v1 == 10 && v2 == c.k+1, fmt.Sprintf("v1 %d v2 %d", v1, v2)
		})
		if m := c.w.max("image=agent:v2"); m != c.k+1 {
			t.Fatalf("%s: at most %d new pods at once during the hold, want %d", c.name, m, c.k+1)
		}
		byNode := c.w.byNode()
		two := 0
		for _, l := range byNode {
			if len(l) == 2 {
				two++
			}
		}
		if two != c.k {
			t.Fatalf("%s: %d nodes with an old and a new pod, want %d", c.name, two, c.k)
		}
		// the status counts the oldest pod of each node only: the surge pods are not
		// "updated" there; the added node's pod is
		d := waitDs(t, ns, c.name, 10*time.Second, "status", func(dsObj) bool { return true })
		if d.Status.UpdatedNumberScheduled != 1 || d.Status.DesiredNumberScheduled != 11 || d.Status.NumberAvailable != 10 {
			t.Fatalf("%s: status during the hold: %s", c.name, d)
		}
	}
	// then it keeps going: the next k once the first are available, the first k old pods gone
	for _, c := range cases {
		first, _ := c.w.firstSince(c.mark, func(e podEvent) bool { return e.Image == "agent:v2" && e.Ready })
		waitFor(t, 30*time.Second, c.name+": the next surge", func() (bool, string) {
			v2 := countImage(c.w, "agent:v2")
			return v2 >= 2*c.k+1, fmt.Sprint(v2)
		})
		var created []podEvent
		c.w.mu.Lock()
		nodeOf := map[string]string{} // a pod is created before it is scheduled: its node comes later
		for _, e := range c.w.events[c.mark:] {
			if e.Node != "" {
				nodeOf[e.UID] = e.Node
			}
		}
		for _, e := range c.w.events[c.mark:] {
			if e.Type == "ADDED" && e.Image == "agent:v2" && nodeOf[e.UID] != extra {
				created = append(created, e)
			}
		}
		c.w.mu.Unlock()
		if len(created) < 2*c.k {
			t.Fatalf("%s: %d new pods", c.name, len(created))
		}
		if gap := created[c.k].At.Sub(first.At); gap < (minReady-1)*time.Second {
			t.Fatalf("%s: the next surge came %.1fs after the first new pod was Ready, before minReadySeconds", c.name, gap.Seconds())
		} else {
			t.Logf("%s: the next surge %.1fs after the first new pod was Ready (minReadySeconds %d)", c.name, gap.Seconds(), minReady)
		}
		c.w.check()
	}
}

// Measured: raising minReadySeconds in the same change as the template makes every old pod
// that has been Ready for less than the new value count as unavailable, and maxSurge lets an
// unavailable old pod be replaced at once: every node gets a new pod (not k), and the old pods
// stay beside them until the new ones are available.
func TestDaemonSetMinReadySecondsRaisedWithTemplate(t *testing.T) {
	ns := newNamespace(t, "dsmrs")
	addNodes(t, ns, 0, 10)
	apply(t, ns, daemonSet("agent", ns, "agent:v1", `{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}`, 0))
	waitDs(t, ns, "agent", 60*time.Second, "10 available", func(d dsObj) bool { return d.Status.NumberAvailable == 10 })
	w := watchPods(t, ns, "app=agent")
	w.waitSynced(10)
	kubectl(t, "-n", ns, "patch", "daemonset", "agent", "-p",
		`{"spec":{"minReadySeconds":3600,"template":{"spec":{"containers":[{"name":"agent","image":"agent:v2"}]}}}}`)
	waitFor(t, 60*time.Second, "10 new pods Ready beside 10 old ones", func() (bool, string) {
		n := 0
		for _, p := range w.byName() {
			if p.image() == "agent:v2" && p.ready() {
				n++
			}
		}
		return n == 10 && countImage(w, "agent:v1") == 10, fmt.Sprintf("new ready %d old %d", n, countImage(w, "agent:v1"))
	})
	for node, l := range w.byNode() {
		if len(l) != 2 || l[0].image() == l[1].image() {
			t.Fatalf("node %s: %d pods", node, len(l))
		}
	}
	// the status counts only the oldest pod of each node (see TestDaemonSetSurgeHold): none
	// is available under the new minReadySeconds
	var d dsObj
	getJSON(t, &d, "-n", ns, "get", "daemonset", "agent")
	if d.Status.NumberAvailable != 0 || d.Status.NumberUnavailable != 10 || d.Status.NumberReady != 10 {
		t.Fatalf("status: %s", d)
	}
	if m := w.max("image=agent:v2"); m != 10 {
		t.Fatalf("at most %d new pods at once", m)
	}
	w.check()
}

// Measured: OnDelete. A new template changes no pod; deleting the pod on one node gives that
// node a pod of the new revision and no other; a node added meanwhile gets the new revision.
func TestDaemonSetOnDelete(t *testing.T) {
	ns := newNamespace(t, "dsod")
	nodes := addNodes(t, ns, 0, 4)
	apply(t, ns, daemonSet("agent", ns, "agent:v1", "{type: OnDelete}", 0))
	waitDs(t, ns, "agent", 60*time.Second, "4 available", func(d dsObj) bool { return d.Status.NumberAvailable == 4 })
	w := watchPods(t, ns, "app=agent")
	w.waitSynced(4)
	kubectl(t, "-n", ns, "set", "image", "daemonset/agent", "agent=agent:v2")
	waitDs(t, ns, "agent", 30*time.Second, "new template seen", func(d dsObj) bool { return d.Status.UpdatedNumberScheduled == 0 })
	holdsFor(t, 3*time.Second, "no pod replaced", func() (bool, string) {
		return countImage(w, "agent:v1") == 4 && countImage(w, "agent:v2") == 0, fmt.Sprint(countImage(w, "agent:v2"))
	})
	target := nodes[2]
	victim := w.byNode()[target][0].Metadata.Name
	kubectl(t, "-n", ns, "delete", "pod", victim, "--wait=false")
	waitDs(t, ns, "agent", 30*time.Second, "one updated", func(d dsObj) bool {
		return d.Status.UpdatedNumberScheduled == 1 && d.Status.NumberReady == 4
	})
	for node, l := range w.byNode() {
		want := "agent:v1"
		if node == target {
			want = "agent:v2"
		}
		if len(l) != 1 || l[0].image() != want {
			t.Fatalf("node %s: %d pods, first %s, want one %s", node, len(l), l[0].image(), want)
		}
	}
	extra := addNodes(t, ns, 4, 1)[0]
	waitDs(t, ns, "agent", 30*time.Second, "the added node's pod", func(d dsObj) bool {
		return d.Status.DesiredNumberScheduled == 5 && d.Status.NumberReady == 5
	})
	if l := w.byNode()[extra]; len(l) != 1 || l[0].image() != "agent:v2" {
		t.Fatalf("added node %s: %v", extra, l)
	}
	if d := waitDs(t, ns, "agent", 10*time.Second, "status", func(dsObj) bool { return true }); d.Status.UpdatedNumberScheduled != 2 {
		t.Fatalf("status: %s", d)
	}
	w.check()
}
