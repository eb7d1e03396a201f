package podsim

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Prometheus HTTP service discovery that yields exactly the targets and __meta_kubernetes_*
// labels of `kubernetes_sd_configs: [{role: pod}]` (prometheus discovery/kubernetes/pod.go),
// read from the API server's pod watch. Debian's prometheus 2.42 is built without the
// Kubernetes SD, so testenv bridges it this way; relabel_configs stay as on a real cluster.

type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var invalidLabel = regexp.MustCompile(`[^a-zA-Z_0-9]`)

func sanitize(s string) string { return invalidLabel.ReplaceAllString(s, "_") }

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func podReady(p *v1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return strings.ToLower(string(c.Status))
		}
	}
	return "unknown"
}

func podTargetGroup(p *v1.Pod) targetGroup {
	ls := map[string]string{
		"__meta_kubernetes_namespace":     p.Namespace,
		"__meta_kubernetes_pod_name":      p.Name,
		"__meta_kubernetes_pod_ip":        p.Status.PodIP,
		"__meta_kubernetes_pod_ready":     podReady(p),
		"__meta_kubernetes_pod_phase":     string(p.Status.Phase),
		"__meta_kubernetes_pod_node_name": p.Spec.NodeName,
		"__meta_kubernetes_pod_host_ip":   p.Status.HostIP,
		"__meta_kubernetes_pod_uid":       string(p.UID),
	}
	for k, v := range p.Labels {
		n := sanitize(k)
		ls["__meta_kubernetes_pod_label_"+n] = v
		ls["__meta_kubernetes_pod_labelpresent_"+n] = "true"
	}
	for k, v := range p.Annotations {
		n := sanitize(k)
		ls["__meta_kubernetes_pod_annotation_"+n] = v
		ls["__meta_kubernetes_pod_annotationpresent_"+n] = "true"
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		ls["__meta_kubernetes_pod_controller_kind"] = ref.Kind
		ls["__meta_kubernetes_pod_controller_name"] = ref.Name
	}
	return targetGroup{Labels: ls}
}

// sdGroups renders one target group per target (HTTP SD has no per-target labels).
func sdGroups(pods []*v1.Pod) []targetGroup {
	out := []targetGroup{}
	for _, p := range pods {
		if p.Status.PodIP == "" {
			continue
		}
		base := podTargetGroup(p)
		add := func(addr string, extra map[string]string) {
			ls := make(map[string]string, len(base.Labels)+len(extra))
			for k, v := range base.Labels {
				ls[k] = v
			}
			for k, v := range extra {
				ls[k] = v
			}
			out = append(out, targetGroup{Targets: []string{addr}, Labels: ls})
		}
		type ctr struct {
			c    v1.Container
			init bool
		}
		var all []ctr
		for _, c := range p.Spec.Containers {
			all = append(all, ctr{c, false})
		}
		for _, c := range p.Spec.InitContainers {
			all = append(all, ctr{c, true})
		}
		for _, x := range all {
			cl := map[string]string{
				"__meta_kubernetes_pod_container_name":  x.c.Name,
				"__meta_kubernetes_pod_container_image": x.c.Image,
				"__meta_kubernetes_pod_container_init":  boolStr(x.init),
			}
			if len(x.c.Ports) == 0 {
				add(p.Status.PodIP, cl)
				continue
			}
			for _, port := range x.c.Ports {
				pl := map[string]string{}
				for k, v := range cl {
					pl[k] = v
				}
				pl["__meta_kubernetes_pod_container_port_name"] = port.Name
				pl["__meta_kubernetes_pod_container_port_number"] = strconv.Itoa(int(port.ContainerPort))
				proto := string(port.Protocol)
				if proto == "" {
					proto = "TCP"
				}
				pl["__meta_kubernetes_pod_container_port_protocol"] = proto
				add(net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port.ContainerPort))), pl)
			}
		}
	}
	return out
}

func (s *Sim) serveSD(w http.ResponseWriter, r *http.Request) {
	var pods []*v1.Pod
	for _, o := range s.podLister.List() {
		if p, ok := o.(*v1.Pod); ok {
			pods = append(pods, p)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sdGroups(pods))
}
