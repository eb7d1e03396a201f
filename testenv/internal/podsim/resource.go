package podsim

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// The kubelet's resource-metrics endpoint (/metrics/resource), which metrics-server scrapes:
// per running container a cumulative CPU counter, the memory working set and the start
// time; per pod and per node the sums. Usage comes from the cpu-/memory- behaviour tokens,
// re-read from the pod's annotation whenever the pod changes, so `kubectl annotate pod`
// changes a running pod's load like real traffic would.

const (
	// StartupCPU is the CPU time a container start costs (also keeps the counter above 0,
	// which metrics-server requires of a container).
	StartupCPU = 0.01 // core-seconds
	// NodeBaseCPU and NodeBaseMemory are a node's own usage (system daemons).
	NodeBaseCPU    = 0.1       // cores
	NodeBaseMemory = 256 << 20 // bytes
)

// usage is a running container's resource use (guarded by container.mu).
type usage struct {
	cpuRate    float64   // cores in use
	memory     float64   // working set bytes
	cpuSeconds float64   // cumulative CPU of the current instance
	cpuAt      time.Time // cpuSeconds is as of this time
	instance   time.Time // runStart of the instance cpuSeconds counts
	warned     bool      // a share of a missing request was logged
}

// nodeUsage is a node's cumulative CPU (guarded by Sim.mu).
type nodeUsage struct {
	cpuSeconds float64
	cpuAt      time.Time
}

// accrue brings the CPU counter up to now; a new container instance starts afresh.
// Caller holds c.mu.
func (c *container) accrue(now time.Time) {
	u := &c.use
	if !u.instance.Equal(c.runStart) {
		u.instance, u.cpuSeconds, u.cpuAt = c.runStart, StartupCPU, c.runStart
	}
	if c.running && now.After(u.cpuAt) {
		u.cpuSeconds += u.cpuRate * now.Sub(u.cpuAt).Seconds()
	}
	u.cpuAt = now
}

// applyUsage sets the container's usage from the pod's behaviour annotation and the image
// tokens, against the container's requests and limits.
func (c *container) applyUsage(pod *v1.Pod) {
	b := ParseBehavior(pod.Annotations[BehaviorAnnotation], c.image)
	var res v1.ResourceRequirements
	for _, sc := range pod.Spec.Containers {
		if sc.Name == c.name {
			res = sc.Resources
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cpu, cpuOK := b.CPU.Of(res.Requests.Cpu().AsApproximateFloat64(), res.Limits.Cpu().AsApproximateFloat64())
	mem, memOK := b.Memory.Of(res.Requests.Memory().AsApproximateFloat64(), res.Limits.Memory().AsApproximateFloat64())
	if !cpuOK {
		cpu = DefaultCPU.Amount
	}
	if !memOK {
		mem = DefaultMemory.Amount
	}
	if (!cpuOK || !memOK) && !c.use.warned {
		c.use.warned = true
		c.pod.s.logf("pod %s/%s container %s: a share (pct) of a resource without request or limit (cpu-%s memory-%s); using the default",
			pod.Namespace, pod.Name, c.name, b.CPU, b.Memory)
	}
	if c.use.cpuRate == cpu && c.use.memory == mem {
		return
	}
	c.accrue(time.Now())
	c.use.cpuRate, c.use.memory = cpu, mem
}

// nodeByIP is the simulated node with this InternalIP.
func (s *Sim) nodeByIP(ip string) *nodeInfo {
	for _, n := range s.nodeList() {
		if n.ip == ip {
			return n
		}
	}
	return nil
}

// localIP is the address a request was sent to (which node's kubelet is asked).
func localIP(r *http.Request) string {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if a == nil {
		return ""
	}
	host, _, _ := net.SplitHostPort(a.String())
	return host
}

// resourceMetrics serves /metrics/resource of the node the request was sent to, in the
// kubelet's format (metric names, labels container/namespace/pod, millisecond timestamps).
func (n *netServer) resourceMetrics(w http.ResponseWriter, r *http.Request) {
	node := n.s.nodeByIP(localIP(r))
	if node == nil {
		http.Error(w, "not a node address", http.StatusNotFound)
		return
	}
	now := time.Now()
	ts := now.UnixMilli()
	n.s.mu.Lock()
	var pods []*podSim
	for _, p := range n.s.pods {
		if p.node == node.name {
			pods = append(pods, p)
		}
	}
	n.s.mu.Unlock()
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].namespace != pods[j].namespace {
			return pods[i].namespace < pods[j].namespace
		}
		return pods[i].name < pods[j].name
	})
	var cpuLines, memLines, startLines, podCPU, podMem []string
	nodeRate, nodeMem := NodeBaseCPU, float64(NodeBaseMemory)
	for _, p := range pods {
		var pc, pm float64
		running := 0
		for _, c := range p.containers {
			c.mu.Lock()
			c.accrue(now)
			ok, cpu, rate, mem, start := c.running, c.use.cpuSeconds, c.use.cpuRate, c.use.memory, c.runStart
			c.mu.Unlock()
			if !ok {
				continue
			}
			running++
			l := fmt.Sprintf(`{container=%q,namespace=%q,pod=%q}`, c.name, p.namespace, p.name)
			cpuLines = append(cpuLines, fmt.Sprintf("container_cpu_usage_seconds_total%s %g %d", l, cpu, ts))
			memLines = append(memLines, fmt.Sprintf("container_memory_working_set_bytes%s %g %d", l, mem, ts))
			startLines = append(startLines, fmt.Sprintf("container_start_time_seconds%s %g %d", l, float64(start.UnixNano())/1e9, ts))
			pc, pm = pc+cpu, pm+mem
			nodeRate, nodeMem = nodeRate+rate, nodeMem+mem
		}
		if running > 0 {
			l := fmt.Sprintf(`{namespace=%q,pod=%q}`, p.namespace, p.name)
			podCPU = append(podCPU, fmt.Sprintf("pod_cpu_usage_seconds_total%s %g %d", l, pc, ts))
			podMem = append(podMem, fmt.Sprintf("pod_memory_working_set_bytes%s %g %d", l, pm, ts))
		}
	}
	n.s.mu.Lock()
	nu := &node.use
	if nu.cpuAt.IsZero() {
		nu.cpuAt, nu.cpuSeconds = now, 1 // a node has used some CPU by the time it is asked
	}
	nu.cpuSeconds += nodeRate * now.Sub(nu.cpuAt).Seconds()
	nu.cpuAt = now
	nodeCPU := nu.cpuSeconds
	n.s.mu.Unlock()

	var b strings.Builder
	family := func(name, typ, help string, lines []string) {
		fmt.Fprintf(&b, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	family("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds", cpuLines)
	family("container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes", memLines)
	family("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds", startLines)
	family("node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds",
		[]string{fmt.Sprintf("node_cpu_usage_seconds_total %g %d", nodeCPU, ts)})
	family("node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes",
		[]string{fmt.Sprintf("node_memory_working_set_bytes %g %d", nodeMem, ts)})
	family("pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds", podCPU)
	family("pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes", podMem)
	family("resource_scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise",
		[]string{"resource_scrape_error 0"})
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
