package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"kubectl-canary/testenv/internal/netns"
)

const (
	// kubeProxyUser is bound to the built-in ClusterRole system:node-proxier by the API
	// server's default ClusterRoleBinding of the same name, as on a kubeadm cluster.
	kubeProxyUser = "system:kube-proxy"
	// kubeProxyHealthzPort: kube-proxy's default; it listens on the namespace end of the veth
	// pair, which the supervisor (on the host) reaches.
	kubeProxyHealthzPort = 10256
)

// kubeProxyArgs runs the real kube-proxy in nftables mode inside the pod network namespace
// (`ip netns exec`, which also gives it the namespace's own /sys), as the proxy of node
// sim-node-0. Every rule it writes lives in that namespace and goes with it.
func (s *sup) kubeProxyArgs() []string {
	return []string{"netns", "exec", s.ns, s.self, "kube-proxy",
		"--kubeconfig", filepath.Join(s.pki, "kube-proxy.kubeconfig"),
		"--proxy-mode", "nftables",
		"--hostname-override", "sim-node-0",
		// clients in the namespace use addresses of the pod subnet: not masqueraded, so a
		// pod sees the client's own address (what sessionAffinity: ClientIP keys on)
		"--cluster-cidr", s.net.PodSubnet,
		"--healthz-bind-address", fmt.Sprintf("%s:%d", s.net.NsVethIP, kubeProxyHealthzPort),
		"--metrics-bind-address", "127.0.0.1:10249",
		// leave the conntrack table size and timeouts as they are (global or per-namespace
		// kernel settings are not the environment's to change)
		"--conntrack-max-per-core", "0",
		"--conntrack-tcp-timeout-established", "0",
		"--conntrack-tcp-timeout-close-wait", "0",
		"--oom-score-adj", "0",
		"--v", "1",
	}
}

// relayAPIServer makes the API server reachable from inside the namespace at the same
// address as on the host (127.0.0.1:<port>, which its serving certificate names), so the
// kubeconfig of kube-proxy is an ordinary one: a listener on the namespace's loopback whose
// connections the supervisor relays to the host's loopback. It lives as long as the
// supervisor; a restarted API server (fault commands) is reached again on the same port.
func (s *sup) relayAPIServer() error {
	addr := fmt.Sprintf("127.0.0.1:%d", s.apiPort)
	l, err := netns.Listen(s.ns, addr)
	if err != nil {
		return fmt.Errorf("API server relay in %s: %w", s.ns, err)
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp4", addr, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return nil
}

// startKubeProxy starts kube-proxy and waits until its /healthz says the rules are synced.
func (s *sup) startKubeProxy(ctx context.Context) error {
	if err := s.relayAPIServer(); err != nil {
		return err
	}
	p, err := s.startProc("kube-proxy", "ip", s.kubeProxyArgs()...)
	if err != nil {
		return err
	}
	p.ready = func(ctx context.Context) error {
		return waitHTTP(ctx, fmt.Sprintf("http://%s:%d/healthz", s.net.NsVethIP, kubeProxyHealthzPort), nil, "kube-proxy /healthz")
	}
	if err := p.ready(ctx); err != nil {
		return err
	}
	logf("kube-proxy synced (%.1fs)", time.Since(s.start).Seconds())
	return nil
}

// smokeClusterIP gives the smoke Deployment a Service and waits until a request from inside
// the namespace to its ClusterIP reaches one of its pods through kube-proxy's rules.
func (s *sup) smokeClusterIP(ctx context.Context, client kubernetes.Interface) error {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: smokeNS},
		Spec: v1.ServiceSpec{Selector: map[string]string{"app": "smoke"},
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	got, err := client.CoreV1().Services(smokeNS).Create(ctx, svc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = client.CoreV1().Services(smokeNS).Get(ctx, "smoke", metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("smoke service: %w", err)
	}
	target := net.JoinHostPort(got.Spec.ClusterIP, "80")
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netns.DialContext(ctx, s.ns, network, addr)
		}}}
	last := ""
	for {
		resp, err := c.Get("http://" + target + "/")
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("X-Sim-Pod"), "smoke-") {
				logf("ClusterIP %s answered by pod %s (%.1fs)", target, resp.Header.Get("X-Sim-Pod"), time.Since(s.start).Seconds())
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ClusterIP %s of the smoke Service not served through kube-proxy: %s", target, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
