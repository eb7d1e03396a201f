// Package supervisor starts, checks and stops every component of the test environment.
package supervisor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubectl-canary/testenv/internal/netns"
	"kubectl-canary/testenv/internal/pki"
)

// proc is a component: its binary and arguments, and its current process. A fault command
// replaces the process with a new run of the same binary and arguments (same ports, same
// certificates).
type proc struct {
	name string
	bin  string
	args []string
	// ready waits until a (re)started run serves; nil: started is enough.
	ready func(ctx context.Context) error
	// cur is the current process (guarded by sup.faults once the environment is up).
	cur *run
	// frozen: SIGSTOPped by a fault command, thawed when thaw fires or is closed early.
	frozen *freeze
}

// run is one process of a component.
type run struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	// expected is set before the supervisor stops the process on purpose (fault command),
	// so that its exit does not bring the whole environment down.
	expected atomic.Bool
}

// exited reports whether the process has ended.
func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// died is an unexpected exit of a component.
type died struct {
	name string
	err  error
}

type sup struct {
	dir        string
	logs       string
	pki        string
	self       string
	promBin    string
	msBin      string
	nodes      int
	ns         string
	net        *netns.Net
	procs      []*proc
	died       chan died
	apiPort    int
	promPort   int
	etcdPort   int
	kcmPort    int
	msPort     int
	schedPort  int
	adminKC    string
	restrictKC string
	start      time.Time
	stopping   atomic.Bool
	// faults serialises fault commands and guards procs and components against them.
	faults  sync.Mutex
	control net.Listener
}

func logf(format string, args ...interface{}) {
	fmt.Printf("%s supervisor: %s\n", time.Now().UTC().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH
}

// ReadPid returns the supervisor pid recorded in dir, if that process is alive.
func ReadPid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid) {
		return pid
	}
	return 0
}

// Main is `testenv supervisor`.
func Main(args []string) int {
	fs := flag.NewFlagSet("supervisor", flag.ExitOnError)
	dir := fs.String("dir", "/tmp/kubectl-canary-testenv", "state directory")
	parent := fs.Int("parent-pid", 0, "stop everything when this process ends (0: never)")
	nodes := fs.Int("nodes", 3, "simulated nodes")
	prom := fs.String("prometheus", "", "prometheus binary (empty: no prometheus)")
	ms := fs.String("metrics-server", "", "metrics-server binary (empty: no metrics API)")
	timeout := fs.Duration("ready-timeout", 120*time.Second, "give up if not ready by then")
	nodeCPU := fs.String("node-cpu", "4", "allocatable cpu per node")
	nodeMem := fs.String("node-memory", "8Gi", "allocatable memory per node")
	nodePods := fs.Int("node-pods", 110, "allocatable pods per node")
	_ = fs.Parse(args)

	abs, err := filepath.Abs(*dir)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if pid := ReadPid(abs); pid > 0 && pid != os.Getpid() {
		logf("already running (pid %d)", pid)
		return 0
	}
	self, err := os.Executable()
	if err != nil {
		logf("%v", err)
		return 1
	}
	s := &sup{dir: abs, logs: filepath.Join(abs, "logs"), pki: filepath.Join(abs, "pki"), self: self, promBin: *prom, msBin: *ms,
		nodes: *nodes, died: make(chan died, 16), start: time.Now()}
	// fresh state, but keep logs/supervisor.log which scripts/testenv redirects into
	for _, d := range []string{"etcd", "prometheus", "pki", "ready", "env", "kubeconfig", "kubeconfig-restricted", "prometheus.yml"} {
		_ = os.RemoveAll(filepath.Join(abs, d))
	}
	for _, d := range []string{s.logs, s.pki} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if err := os.WriteFile(filepath.Join(abs, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case x := <-sig:
			logf("got %v", x)
		case d := <-s.died:
			if s.stopping.Load() {
				return
			}
			logf("component %s exited unexpectedly: %v (see %s)", d.name, d.err, filepath.Join(s.logs, d.name+".log"))
		case <-ctx.Done():
			return
		}
		cancel()
	}()
	if *parent > 0 {
		go func() {
			for alive(*parent) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
			logf("parent process %d ended", *parent)
			cancel()
		}()
	}

	code := 0
	if err := s.up(ctx, *timeout, *nodeCPU, *nodeMem, *nodePods); err != nil {
		logf("NOT READY: %v", err)
		_ = os.WriteFile(filepath.Join(abs, "failed"), []byte(err.Error()+"\n"), 0o644)
		code = 1
	} else {
		_ = os.WriteFile(filepath.Join(abs, "ready"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
		logf("READY in %.1fs; env file %s", time.Since(s.start).Seconds(), filepath.Join(abs, "env"))
		<-ctx.Done()
	}
	s.shutdown()
	return code
}

func (s *sup) startProc(name string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, bin: bin, args: args}
	if err := s.launch(p, os.O_TRUNC); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// launch starts a new process of p; a restart appends to the component's log (logMode O_APPEND).
func (s *sup) launch(p *proc, logMode int) error {
	lf, err := os.OpenFile(filepath.Join(s.logs, p.name+".log"), os.O_CREATE|os.O_WRONLY|logMode, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	r := &run{cmd: cmd, done: make(chan struct{})}
	p.cur = r
	logf("started %s (pid %d)", p.name, cmd.Process.Pid)
	go func() {
		r.err = cmd.Wait()
		lf.Close()
		close(r.done)
		if r.expected.Load() {
			return
		}
		select {
		case s.died <- died{p.name, r.err}:
		default:
		}
	}()
	return nil
}

// stop ends process r: SIGCONT (it may be frozen), SIGTERM, SIGKILL after grace. expected
// marks the exit as wanted (fault command) rather than a failure of the environment.
func stop(name string, r *run, grace time.Duration, expected bool) {
	if r.exited() {
		return
	}
	if expected {
		r.expected.Store(true)
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(grace):
		logf("%s did not stop within %s, killing", name, grace)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func (s *sup) shutdown() {
	s.stopping.Store(true)
	signal.Reset()
	if s.control != nil {
		s.control.Close()
	}
	// a fault command in progress finishes first (at most its own timeout)
	s.faults.Lock()
	defer s.faults.Unlock()
	// ignore deaths from here on
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		if p.cur == nil || p.cur.exited() {
			continue
		}
		s.thaw(p)
		stop(p.name, p.cur, 5*time.Second, true)
		logf("stopped %s", p.name)
	}
	_ = os.Remove(filepath.Join(s.dir, controlSocket))
	if s.ns != "" {
		if err := netns.Delete(s.ns); err != nil {
			logf("removing netns %s: %v", s.ns, err)
		}
	}
	_ = os.Remove(filepath.Join(s.dir, "env"))
	_ = os.Remove(filepath.Join(s.dir, "ready"))
	_ = os.Remove(filepath.Join(s.dir, "pid"))
	logf("stopped")
}

func writeKubeconfig(path, server string, caPEM []byte, user string, kp *pki.KeyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "testenv"
	return clientcmd.WriteToFile(*cfg, path)
}

func (s *sup) up(ctx context.Context, timeout time.Duration, nodeCPU, nodeMem string, nodePods int) error {
	deadline, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx = deadline

	var err error
	s.net, err = netns.Create(os.Getpid())
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	s.ns = s.net.Name
	logf("netns %s: pods/nodes %s via %s", s.ns, s.net.PodSubnet, s.net.NsVethIP)

	// ports
	if s.etcdPort, err = freePort(); err != nil {
		return err
	}
	etcdPeer, _ := freePort()
	if s.apiPort, err = freePort(); err != nil {
		return err
	}
	s.promPort, _ = freePort()
	s.msPort, _ = freePort()

	// PKI
	ca, err := pki.NewCA("kubectl-canary-testenv-ca")
	if err != nil {
		return err
	}
	caPath := filepath.Join(s.pki, "ca.crt")
	if err := os.WriteFile(caPath, ca.CertPEM, 0o644); err != nil {
		return err
	}
	serving, err := ca.Issue("kube-apiserver", nil, []string{"127.0.0.1", "localhost", "10.96.0.1", "kubernetes",
		"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, false, true)
	if err != nil {
		return err
	}
	servingCrt, servingKey, err := serving.Write(s.pki, "apiserver")
	if err != nil {
		return err
	}
	kubeletClient, _ := ca.Issue("kube-apiserver-kubelet-client", []string{"system:masters"}, nil, true, false)
	kcCrt, kcKey, err := kubeletClient.Write(s.pki, "apiserver-kubelet-client")
	if err != nil {
		return err
	}
	saKey, saPub := filepath.Join(s.pki, "sa.key"), filepath.Join(s.pki, "sa.pub")
	if err := pki.WriteRSAKeyPair(saKey, saPub); err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", s.apiPort)
	idents := []struct {
		file, cn string
		orgs     []string
	}{
		{"kubeconfig", "admin", []string{"system:masters"}},
		{"kubeconfig-restricted", "restricted", nil},
		{"pki/controller-manager.kubeconfig", "system:kube-controller-manager", []string{"system:masters"}},
		{"pki/scheduler.kubeconfig", "system:kube-scheduler", []string{"system:masters"}},
		{"pki/podsim.kubeconfig", "testenv-podsim", []string{"system:masters"}},
		{"pki/metrics-server.kubeconfig", metricsServerUser, nil},
		{"pki/kube-proxy.kubeconfig", kubeProxyUser, nil},
	}
	var adminKP *pki.KeyPair
	for _, id := range idents {
		kp, err := ca.Issue(id.cn, id.orgs, nil, true, false)
		if err != nil {
			return err
		}
		switch id.cn {
		case "admin":
			adminKP = kp
		}
		if err := writeKubeconfig(filepath.Join(s.dir, id.file), server, ca.CertPEM, id.cn, kp); err != nil {
			return err
		}
	}
	s.adminKC = filepath.Join(s.dir, "kubeconfig")
	s.restrictKC = filepath.Join(s.dir, "kubeconfig-restricted")

	// aggregation layer (front proxy) and metrics-server's serving certificate
	fp, err := writeFrontProxy(s.pki)
	if err != nil {
		return err
	}
	msServing, err := ca.Issue("metrics-server", nil, []string{s.net.HostVethIP, "metrics-server.kube-system.svc",
		"metrics-server.kube-system.svc.cluster.local"}, false, true)
	if err != nil {
		return err
	}
	msCrt, msKey, err := msServing.Write(s.pki, "metrics-server")
	if err != nil {
		return err
	}

	// etcd
	if _, err := s.startProc("etcd", s.self, "etcd", "--data-dir", filepath.Join(s.dir, "etcd"),
		"--listen-client-url", fmt.Sprintf("http://127.0.0.1:%d", s.etcdPort),
		"--listen-peer-url", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)); err != nil {
		return err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", s.etcdPort), nil, "etcd"); err != nil {
		return err
	}
	logf("etcd ready (%.1fs)", time.Since(s.start).Seconds())

	// kube-apiserver
	tlsCfg, err := clientTLS(ca.CertPEM, adminKP)
	if err != nil {
		return err
	}
	apiReady := func(ctx context.Context) error {
		return waitHTTP(ctx, server+"/readyz", tlsCfg, "kube-apiserver /readyz")
	}
	apiProc, err := s.startProc("kube-apiserver", s.self, append([]string{"kube-apiserver",
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", s.etcdPort),
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(s.apiPort),
		"--advertise-address", s.net.HostVethIP,
		"--endpoint-reconciler-type", "none",
		"--cert-dir", s.pki,
		"--tls-cert-file", servingCrt, "--tls-private-key-file", servingKey,
		"--client-ca-file", caPath,
		"--authorization-mode", "Node,RBAC",
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--kubelet-client-certificate", kcCrt, "--kubelet-client-key", kcKey,
		"--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--allow-privileged=true",
		"--profiling=false",
		"--event-ttl", "1h",
		"--v", "1",
	}, fp.apiServerFlags()...)...)
	if err != nil {
		return err
	}
	apiProc.ready = apiReady
	if err := apiReady(ctx); err != nil {
		return err
	}
	logf("kube-apiserver ready at %s (%.1fs)", server, time.Since(s.start).Seconds())

	rc, err := clientcmd.BuildConfigFromFlags("", s.adminKC)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	// restricted user: view only, cluster-wide
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "testenv-restricted-view"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "restricted"}}}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("restricted binding: %w", err)
	}
	if err := storageClasses(ctx, client); err != nil {
		return err
	}
	if s.msBin != "" {
		// a restarted API server serves again once the metrics API is available too
		apiProc.ready = func(ctx context.Context) error {
			if err := apiReady(ctx); err != nil {
				return err
			}
			return waitAPIServiceAvailable(ctx, rc)
		}
		if err := s.metricsServerObjects(ctx, client, rc, ca.CertPEM); err != nil {
			return err
		}
		if _, err := s.startProc("metrics-server", s.msBin,
			s.metricsServerArgs(filepath.Join(s.pki, "metrics-server.kubeconfig"), msCrt, msKey)...); err != nil {
			return err
		}
	}

	// controllers
	controllers := strings.Join([]string{
		"deployment-controller", "replicaset-controller", "garbage-collector-controller", "namespace-controller",
		"serviceaccount-controller", "serviceaccount-token-controller", "endpoints-controller", "endpointslice-controller",
		"endpointslice-mirroring-controller", "root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
		"disruption-controller", "pod-garbage-collector-controller", "resourcequota-controller", "ttl-controller",
		"horizontal-pod-autoscaler-controller",
		// StatefulSets and DaemonSets, and the persistent volumes of a StatefulSet's
		// volumeClaimTemplates: the binder binds (and, with --enable-hostpath-provisioner,
		// provisions) PVs for PVCs; the protection controllers lift the finalizers that the
		// StorageObjectInUseProtection admission plugin puts on every PVC and PV, without
		// which a PVC (and so its namespace) is never deleted. The ControllerRevisions both
		// kinds write are garbage-collected by the garbage collector (owner references).
		"daemonset-controller", "statefulset-controller", "persistentvolume-binder-controller",
		"persistentvolumeclaim-protection-controller", "persistentvolume-protection-controller",
	}, ",")
	// healthz of the controller-manager and the scheduler (self-signed serving certs, paths
	// always allowed): how a fault command knows a restarted one serves again
	if s.kcmPort, err = freePort(); err != nil {
		return err
	}
	if s.schedPort, err = freePort(); err != nil {
		return err
	}
	kcmProc, err := s.startProc("kube-controller-manager", s.self, "kube-controller-manager",
		"--kubeconfig", filepath.Join(s.pki, "controller-manager.kubeconfig"),
		"--controllers", controllers,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(s.kcmPort),
		// HPA: decisions every second instead of 15 s, and a 10 s instead of 5 min
		// scale-down stabilisation window and CPU initialisation period, so tests of
		// min/max bounds and CPU targets take seconds (a real cluster tunes these too)
		"--horizontal-pod-autoscaler-sync-period", "1s",
		"--horizontal-pod-autoscaler-downscale-stabilization", "10s",
		"--horizontal-pod-autoscaler-cpu-initialization-period", "10s",
		"--horizontal-pod-autoscaler-initial-readiness-delay", "5s",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file", saKey,
		"--root-ca-file", caPath,
		"--controller-start-interval", "0s",
		"--concurrent-deployment-syncs", "10",
		"--concurrent-replicaset-syncs", "10",
		"--concurrent-gc-syncs", "20",
		"--concurrent-namespace-syncs", "10",
		"--concurrent-statefulset-syncs", "10",
		"--concurrent-daemonset-syncs", "10",
		// the in-tree hostPath provisioner (kubernetes.io/host-path, run by the PV binder):
		// the StorageClasses testenv-hostpath (default) and testenv-hostpath-wffc, see
		// storage.go; its directories are /tmp/hostpath_pv/<uuid>, removed with the PV
		"--enable-hostpath-provisioner",
		// The default client-side limit (20 qps) throttles the controllers as soon as a
		// few tests run at once; the real limit here is the API server's own.
		"--kube-api-qps", "200",
		"--kube-api-burst", "400",
		"--v", "1",
	)
	if err != nil {
		return err
	}
	kcmProc.ready = healthz(fmt.Sprintf("https://127.0.0.1:%d/healthz", s.kcmPort), "kube-controller-manager /healthz")
	schedProc, err := s.startProc("kube-scheduler", s.self, "kube-scheduler",
		"--kubeconfig", filepath.Join(s.pki, "scheduler.kubeconfig"),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(s.schedPort),
		"--v", "1",
	)
	if err != nil {
		return err
	}
	schedProc.ready = healthz(fmt.Sprintf("https://127.0.0.1:%d/healthz", s.schedPort), "kube-scheduler /healthz")
	if _, err := s.startProc("podsim", s.self, "podsim",
		"--kubeconfig", filepath.Join(s.pki, "podsim.kubeconfig"),
		"--netns", s.ns,
		"--ip-prefix", s.net.IPPrefix,
		"--nodes", strconv.Itoa(s.nodes),
		"--node-cpu", nodeCPU, "--node-memory", nodeMem, "--node-pods", strconv.Itoa(nodePods),
	); err != nil {
		return err
	}
	if err := s.startKubeProxy(ctx); err != nil {
		return err
	}
	promURL := ""
	if s.promBin != "" {
		tokenFile := filepath.Join(s.pki, "prometheus.token")
		if err := prometheusIdentity(ctx, client, tokenFile); err != nil {
			return err
		}
		if err := s.writePromConfig(server, caPath, tokenFile); err != nil {
			return err
		}
		if _, err := s.startProc("prometheus", s.promBin,
			"--config.file", filepath.Join(s.dir, "prometheus.yml"),
			"--storage.tsdb.path", filepath.Join(s.dir, "prometheus"),
			"--storage.tsdb.retention.time", "1d",
			"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", s.promPort),
			"--web.enable-lifecycle",
			"--log.level", "warn",
		); err != nil {
			return err
		}
		promURL = fmt.Sprintf("http://127.0.0.1:%d", s.promPort)
		// The same port on the host side of the veth pair, behind the Service.
		if err := forwardTCP(fmt.Sprintf("%s:%d", s.net.HostVethIP, s.promPort), fmt.Sprintf("127.0.0.1:%d", s.promPort)); err != nil {
			return fmt.Errorf("prometheus forwarder: %w", err)
		}
		if err := prometheusService(ctx, client, s.net.HostVethIP, s.promPort); err != nil {
			return err
		}
	}
	if err := s.smoke(ctx, client, promURL); err != nil {
		return err
	}
	if s.msBin != "" {
		if err := waitAPIServiceAvailable(ctx, rc); err != nil {
			return err
		}
		logf("metrics API available (%.1fs)", time.Since(s.start).Seconds())
	}
	if err := s.listenControl(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	// written only once ready, removed at shutdown: its presence means "running"
	return s.writeEnv(promURL)
}

func (s *sup) writeEnv(promURL string) error {
	var names []string
	for i := 0; i < s.nodes; i++ {
		names = append(names, fmt.Sprintf("sim-node-%d", i))
	}
	lines := []string{
		"KUBECONFIG=" + s.adminKC,
		"KC_TESTENV_DIR=" + s.dir,
		"KC_RESTRICTED_KUBECONFIG=" + s.restrictKC,
		"KC_PROMETHEUS_URL=" + promURL,
		"KC_TESTENV_LOGS=" + s.logs,
		"KC_POD_NETNS=" + s.ns,
		"KC_APISERVER_URL=" + fmt.Sprintf("https://127.0.0.1:%d", s.apiPort),
		"KC_TESTENV_PID=" + strconv.Itoa(os.Getpid()),
		"KC_POD_SUBNET=" + s.net.PodSubnet,
		"KC_SIM_NODES=" + strings.Join(names, ","),
		"KC_TESTENV_CONTROL=" + filepath.Join(s.dir, controlSocket),
		// the multi-call binary itself: `$KC_TESTENV_BIN traffic ...` sends requests from
		// inside the pod network namespace (ClusterIPs through kube-proxy)
		"KC_TESTENV_BIN=" + s.self,
	}
	tmp := filepath.Join(s.dir, "env.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, "env"))
}

func clientTLS(caPEM []byte, kp *pki.KeyPair) (*tls.Config, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

// healthz waits for a component's /healthz on its self-signed serving certificate.
func healthz(u, what string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return waitHTTP(ctx, u, &tls.Config{InsecureSkipVerify: true}, what) //nolint:gosec // self-signed, loopback
	}
}

func waitHTTP(ctx context.Context, u string, tlsCfg *tls.Config, what string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil}}
	last := ""
	for {
		resp, err := c.Get(u)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %s", what, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

const smokeNS = "testenv-smoke"

// smoke proves scheduler + controllers + simulator + Prometheus work, then cleans up.
func (s *sup) smoke(ctx context.Context, client kubernetes.Interface, promURL string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: smokeNS}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("smoke namespace: %w", err)
	}
	two := int32(2)
	labels := map[string]string{"app": "smoke"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: smokeNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
				Spec: v1.PodSpec{Containers: []v1.Container{{Name: "web", Image: "testenv/smoke:1",
					Ports: []v1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
	// the ServiceAccount admission plugin needs the namespace's default ServiceAccount
	for {
		_, err = client.AppsV1().Deployments(smokeNS).Create(ctx, d, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("smoke deployment: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	last := ""
	for {
		got, err := client.AppsV1().Deployments(smokeNS).Get(ctx, "smoke", metav1.GetOptions{})
		if err == nil {
			last = fmt.Sprintf("replicas=%d updated=%d ready=%d available=%d", got.Status.Replicas, got.Status.UpdatedReplicas,
				got.Status.ReadyReplicas, got.Status.AvailableReplicas)
			if got.Status.AvailableReplicas == 2 && got.Status.UpdatedReplicas == 2 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("smoke deployment not available (%s)", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	logf("smoke deployment available (%.1fs)", time.Since(s.start).Seconds())
	if err := s.smokeClusterIP(ctx, client); err != nil {
		return err
	}
	if promURL != "" {
		q := promURL + "/api/v1/query?query=" + url.QueryEscape(`count(up{namespace="testenv-smoke"} == 1)`)
		for {
			n, err := promScalar(q)
			if err == nil && n >= 2 {
				break
			}
			if err != nil {
				last = err.Error()
			} else {
				last = fmt.Sprintf("%d targets up", n)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("prometheus has no series for the smoke pods (%s)", last)
			case <-time.After(250 * time.Millisecond):
			}
		}
		logf("prometheus scraping the smoke pods (%.1fs)", time.Since(s.start).Seconds())
	}
	bg := metav1.DeletePropagationBackground
	if err := client.CoreV1().Namespaces().Delete(ctx, smokeNS, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		return fmt.Errorf("deleting smoke namespace: %w", err)
	}
	return nil
}

func promScalar(u string) (int, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value []interface{} `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) == 0 {
		return 0, nil
	}
	if len(r.Data.Result[0].Value) != 2 {
		return 0, errors.New("bad prometheus answer")
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	return int(f), err
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
