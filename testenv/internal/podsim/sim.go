// Package podsim stands in for kubelets: it registers fake Nodes, runs every pod bound to
// them as a simulated container set, reports status like a kubelet, serves the pods' HTTP
// ports and the kubelet log API inside the test network namespace.
package podsim

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/version"
)

// Config of the simulator.
type Config struct {
	Kubeconfig string
	Netns      string
	Nodes      int
	NodeCPU    string
	NodeMemory string
	NodePods   int
	IPPrefix   string
}

type nodeInfo struct {
	name   string
	ip     string
	index  int
	used   map[string]bool
	nextIP int
	use    nodeUsage // resource metrics (guarded by Sim.mu)
	// adopted: a Node created by someone else (a test) with the label SimNodeLabel, which the
	// simulator took over while running; forgotten when the Node is deleted
	adopted  bool
	recorder record.EventRecorder
}

// SimNodeLabel marks the simulated nodes. A Node created while the simulator runs with this
// label set to "true" is adopted: the simulator reports its status and heartbeat, lifts the
// not-ready taint and runs the pods bound to it, as for its own nodes ("a node joins").
const SimNodeLabel = "sim.kubectl-canary.io/node"

// Sim is the simulator.
type Sim struct {
	cfg         Config
	client      kubernetes.Interface
	broadcaster record.EventBroadcaster
	podLister   cache.Indexer

	mu sync.Mutex
	// nodesMu guards the nodes map (nodes are adopted and forgotten while running); never
	// held while taking mu
	nodesMu sync.RWMutex
	nodes   map[string]*nodeInfo
	pods    map[types.UID]*podSim
	byIP    map[string]*podSim
	byName  map[string]*podSim // ns/name

	net *netServer
}

func (s *Sim) logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s podsim: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Main is the entry point of `testenv podsim`.
func Main(args []string) int {
	fs := flag.NewFlagSet("podsim", flag.ExitOnError)
	var cfg Config
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig")
	fs.StringVar(&cfg.Netns, "netns", "", "network namespace holding pod and node IPs")
	fs.IntVar(&cfg.Nodes, "nodes", 3, "number of simulated nodes")
	fs.StringVar(&cfg.NodeCPU, "node-cpu", "4", "allocatable cpu per node")
	fs.StringVar(&cfg.NodeMemory, "node-memory", "8Gi", "allocatable memory per node")
	fs.IntVar(&cfg.NodePods, "node-pods", 110, "allocatable pods per node")
	fs.StringVar(&cfg.IPPrefix, "ip-prefix", "10.213", "first two octets of every node and pod IP")
	_ = fs.Parse(args)
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; cancel() }()
	if err := Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "podsim:", err)
		return 1
	}
	return 0
}

// NodeIP of simulated node i.
func (s *Sim) NodeIP(i int) string { return fmt.Sprintf("%s.0.%d", s.cfg.IPPrefix, 10+i) }

// Run runs the simulator until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.IPPrefix == "" {
		cfg.IPPrefix = "10.213"
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 200, 400
	rc.UserAgent = "testenv-podsim"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	s := &Sim{cfg: cfg, client: client, nodes: map[string]*nodeInfo{}, pods: map[types.UID]*podSim{},
		byIP: map[string]*podSim{}, byName: map[string]*podSim{}}
	bc := record.NewBroadcaster(record.WithContext(ctx))
	s.broadcaster = bc
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer bc.Shutdown()
	for i := 0; i < cfg.Nodes; i++ {
		name := fmt.Sprintf("sim-node-%d", i)
		s.nodes[name] = &nodeInfo{name: name, ip: s.NodeIP(i), index: i, used: map[string]bool{}, nextIP: 2,
			recorder: bc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: name})}
	}
	s.net = newNetServer(s, cfg.Netns)
	if err := s.net.startKubelet(); err != nil {
		return err
	}
	for _, n := range s.nodes {
		if err := s.registerNode(ctx, n); err != nil {
			return err
		}
	}
	go s.heartbeat(ctx)

	f := informers.NewSharedInformerFactory(client, 0)
	_, _ = f.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { s.onNode(ctx, o) },
		UpdateFunc: func(_, o interface{}) { s.onNode(ctx, o) },
		DeleteFunc: func(o interface{}) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if n, ok := o.(*v1.Node); ok {
				s.forgetNode(n.Name)
			}
		},
	})
	inf := f.Core().V1().Pods().Informer()
	s.podLister = inf.GetIndexer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o interface{}) { s.onPod(ctx, o) },
		UpdateFunc: func(_, o interface{}) { s.onPod(ctx, o) },
		DeleteFunc: func(o interface{}) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				s.stopPod(p.UID)
			}
		},
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	s.logf("ready: %d nodes, netns %s", cfg.Nodes, cfg.Netns)
	<-ctx.Done()
	s.mu.Lock()
	for _, p := range s.pods {
		p.cancel()
	}
	s.mu.Unlock()
	s.net.close()
	return nil
}

func (s *Sim) cachedPod(ns, name string) *v1.Pod {
	o, ok, _ := s.podLister.GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*v1.Pod)
}

func (s *Sim) nodeObject(n *nodeInfo) *v1.Node {
	now := metav1.Now()
	rl := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse(s.cfg.NodeCPU),
		v1.ResourceMemory:           resource.MustParse(s.cfg.NodeMemory),
		v1.ResourcePods:             *resource.NewQuantity(int64(s.cfg.NodePods), resource.DecimalSI),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{
			"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
			"topology.kubernetes.io/zone": fmt.Sprintf("sim-zone-%d", n.index%3), "sim.kubectl-canary.io/node": "true"},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: v1.NodeSpec{PodCIDR: fmt.Sprintf("%s.%d.0/24", s.cfg.IPPrefix, n.index+1), PodCIDRs: []string{fmt.Sprintf("%s.%d.0/24", s.cfg.IPPrefix, n.index+1)}},
		Status: v1.NodeStatus{
			Capacity: rl, Allocatable: rl,
			Phase: v1.NodeRunning,
			Conditions: []v1.NodeCondition{
				{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
				{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "simulated kubelet is posting ready status", LastHeartbeatTime: now, LastTransitionTime: now},
			},
			Addresses:       []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: n.ip}, {Type: v1.NodeHostName, Address: n.name}},
			DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: 10250}},
			NodeInfo: v1.NodeSystemInfo{MachineID: n.name, SystemUUID: n.name, BootID: n.name, KernelVersion: "6.1.0-sim",
				OSImage: "kubectl-canary testenv pod simulator", ContainerRuntimeVersion: "containerd://sim",
				KubeletVersion: version.Get().GitVersion, KubeProxyVersion: version.Get().GitVersion, OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
}

func (s *Sim) registerNode(ctx context.Context, n *nodeInfo) error {
	obj := s.nodeObject(n)
	created, err := s.client.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = s.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.name, err)
	}
	created.Status = obj.Status
	updated, err := s.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("node status %s: %w", n.name, err)
	}
	// The TaintNodesByCondition admission plugin adds node.kubernetes.io/not-ready to new
	// nodes; the node-lifecycle controller (not run here) would lift it once Ready.
	var taints []v1.Taint
	for _, t := range updated.Spec.Taints {
		if t.Key != v1.TaintNodeNotReady && t.Key != v1.TaintNodeUnreachable {
			taints = append(taints, t)
		}
	}
	if len(taints) != len(updated.Spec.Taints) {
		updated.Spec.Taints = taints
		if _, err := s.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node taints %s: %w", n.name, err)
		}
	}
	s.renewLease(ctx, n)
	return nil
}

func (s *Sim) renewLease(ctx context.Context, n *nodeInfo) {
	leases := s.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(40)
	l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: v1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &n.name, LeaseDurationSeconds: &dur, RenewTime: &now}}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			s.logf("lease %s: %v", n.name, err)
		}
		return
	}
	if err != nil {
		return
	}
	l.Spec.RenewTime = &now
	_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
}

func (s *Sim) heartbeat(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, n := range s.nodeList() {
			s.renewLease(ctx, n)
			cur, err := s.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && !n.adopted {
					_ = s.registerNode(ctx, n)
				}
				continue
			}
			now := metav1.Now()
			for i := range cur.Status.Conditions {
				cur.Status.Conditions[i].LastHeartbeatTime = now
			}
			_, _ = s.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
	}
}

func (s *Sim) nodeNamed(name string) *nodeInfo {
	s.nodesMu.RLock()
	defer s.nodesMu.RUnlock()
	return s.nodes[name]
}

func (s *Sim) nodeList() []*nodeInfo {
	s.nodesMu.RLock()
	defer s.nodesMu.RUnlock()
	l := make([]*nodeInfo, 0, len(s.nodes))
	for _, n := range s.nodes {
		l = append(l, n)
	}
	return l
}

// maxNodes: node i has the pod CIDR <prefix>.(i+1).0/24, and <prefix>.250 is taken by the
// synthetic clients
const maxNodes = 249

// onNode adopts a Node labelled SimNodeLabel=true that the simulator does not know yet.
func (s *Sim) onNode(ctx context.Context, o interface{}) {
	node, ok := o.(*v1.Node)
	if !ok || node.Labels[SimNodeLabel] != "true" || node.DeletionTimestamp != nil {
		return
	}
	s.nodesMu.Lock()
	if _, known := s.nodes[node.Name]; known {
		s.nodesMu.Unlock()
		return
	}
	// the lowest index no node has (a forgotten node's index is free again)
	taken := map[int]bool{}
	for _, n := range s.nodes {
		taken[n.index] = true
	}
	index := s.cfg.Nodes
	for taken[index] {
		index++
	}
	if index >= maxNodes {
		s.nodesMu.Unlock()
		s.logf("cannot adopt node %s: at most %d nodes", node.Name, maxNodes)
		return
	}
	n := &nodeInfo{name: node.Name, ip: s.NodeIP(index), index: index, used: map[string]bool{}, nextIP: 2, adopted: true,
		recorder: s.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: node.Name})}
	s.nodes[n.name] = n
	s.nodesMu.Unlock()
	s.logf("adopting node %s (ip %s)", n.name, n.ip)
	go func() {
		// the node's own creator and the controllers write it too: retry on conflicts, as
		// the kubelet does
		for attempt := 1; ; attempt++ {
			err := s.registerNode(ctx, n)
			if err == nil || ctx.Err() != nil || s.nodeNamed(n.name) != n {
				return
			}
			s.logf("adopting node %s (attempt %d): %v", n.name, attempt, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond * time.Duration(min(attempt, 20))):
			}
		}
	}()
}

// forgetNode drops an adopted node once its Node is deleted and stops the pods it ran (the
// pod garbage collector deletes their Pods, as for a node that is gone).
func (s *Sim) forgetNode(name string) {
	s.nodesMu.Lock()
	n := s.nodes[name]
	if n == nil || !n.adopted {
		s.nodesMu.Unlock()
		return
	}
	delete(s.nodes, name)
	s.nodesMu.Unlock()
	var uids []types.UID
	s.mu.Lock()
	for uid, p := range s.pods {
		if p.node == name {
			uids = append(uids, uid)
		}
	}
	s.mu.Unlock()
	for _, uid := range uids {
		s.stopPod(uid)
	}
	s.logf("node %s deleted: forgotten, %d pods stopped", name, len(uids))
}

func (s *Sim) allocIP(n *nodeInfo) string {
	for i := 0; i < 253; i++ {
		x := n.nextIP
		n.nextIP++
		if n.nextIP > 254 {
			n.nextIP = 2
		}
		ip := fmt.Sprintf("%s.%d.%d", s.cfg.IPPrefix, n.index+1, x)
		if !n.used[ip] {
			n.used[ip] = true
			return ip
		}
	}
	return ""
}

func (s *Sim) onPod(ctx context.Context, o interface{}) {
	pod, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	n := s.nodeNamed(pod.Spec.NodeName)
	if n == nil {
		return
	}
	if pod.DeletionTimestamp != nil {
		s.mu.Lock()
		p := s.pods[pod.UID]
		s.mu.Unlock()
		if p != nil {
			for _, c := range p.containers {
				c.mu.Lock()
				running := c.running
				c.mu.Unlock()
				if running {
					p.event(v1.EventTypeNormal, "Killing", "Stopping container "+c.name)
				}
			}
		}
		s.stopPod(pod.UID)
		go s.deletePod(ctx, pod)
		return
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		s.mu.Lock()
		_, tracked := s.pods[pod.UID]
		s.mu.Unlock()
		if !tracked {
			return
		}
	}
	s.mu.Lock()
	if p, exists := s.pods[pod.UID]; exists {
		s.mu.Unlock()
		if len(p.readinessGate) > 0 {
			p.dirty()
		}
		for _, c := range p.containers {
			c.applyUsage(pod) // the behaviour annotation may have changed
		}
		return
	}
	ip := n.ip
	if !pod.Spec.HostNetwork {
		ip = s.allocIP(n)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &podSim{s: s, namespace: pod.Namespace, name: pod.Name, uid: pod.UID, node: n.name, hostIP: n.ip, podIP: ip,
		restartPolicy: pod.Spec.RestartPolicy, startTime: metav1.Now(), ctx: pctx, cancel: cancel,
		dirtyCh: make(chan struct{}, 1), condLTT: map[v1.PodConditionType]condState{},
		ref: &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}}
	if p.restartPolicy == "" {
		p.restartPolicy = v1.RestartPolicyAlways
	}
	for _, g := range pod.Spec.ReadinessGates {
		p.readinessGate = append(p.readinessGate, g.ConditionType)
	}
	ann := pod.Annotations[BehaviorAnnotation]
	for _, c := range pod.Spec.Containers {
		ct := newContainer(p, c, ann)
		ct.applyUsage(pod)
		p.containers = append(p.containers, ct)
	}
	for _, c := range pod.Spec.InitContainers {
		real, _ := SplitImage(c.Image)
		f := true
		now := metav1.Now()
		p.inits = append(p.inits, v1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: real, Ready: true, Started: &f,
			State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}})
	}
	s.pods[pod.UID] = p
	if !pod.Spec.HostNetwork {
		s.byIP[ip] = p
	}
	s.byName[pod.Namespace+"/"+pod.Name] = p
	s.mu.Unlock()
	s.logf("start pod %s/%s on %s ip %s", pod.Namespace, pod.Name, n.name, ip)
	for _, c := range p.containers {
		if len(c.b.Unknown) > 0 {
			s.logf("pod %s/%s container %s: unknown behaviour tokens %v", pod.Namespace, pod.Name, c.name, c.b.Unknown)
		}
		ports := c.ports
		if len(ports) == 0 {
			ports = []int32{80}
		}
		for _, port := range ports {
			if err := s.net.ensurePort(int(port)); err != nil {
				s.logf("listen port %d: %v", port, err)
			}
		}
	}
	go p.writer()
	p.dirty()
	for _, c := range p.containers {
		go c.run(pctx)
	}
}

// recorderFor returns the event recorder of the pod's node.
func (p *podSim) recorderFor() record.EventRecorder {
	if n := p.s.nodeNamed(p.node); n != nil {
		return n.recorder
	}
	return nil
}

func (s *Sim) stopPod(uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pods[uid]
	if !ok {
		return
	}
	p.cancel()
	delete(s.pods, uid)
	if s.byIP[p.podIP] == p {
		delete(s.byIP, p.podIP)
	}
	if s.byName[p.namespace+"/"+p.name] == p {
		delete(s.byName, p.namespace+"/"+p.name)
	}
	if n := s.nodeNamed(p.node); n != nil && p.podIP != n.ip {
		delete(n.used, p.podIP)
	}
}

func (s *Sim) deletePod(ctx context.Context, pod *v1.Pod) {
	zero := int64(0)
	uid := pod.UID
	err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.logf("delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func (s *Sim) podByIP(ip string) *podSim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byIP[ip]
}

func (s *Sim) podByName(ns, name string) *podSim {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[ns+"/"+name]
}

var _ = net.IPv4len
