// Package netns creates the network namespace that hosts every simulated pod and node IP.
//
// Layout of the first environment on a machine (index 0; index i uses 10.(213+2i) and
// 10.(214+2i), so that several environments can run side by side):
//
//	host  <-- veth /30 10.214.255.253 ------ 10.214.255.254 --> netns kctest-<pid>
//	host route: 10.213.0.0/16 via 10.214.255.254
//	netns: "local 10.213.0.0/16 dev lo" (AnyIP) so every pod/node IP is local there.
//	netns: "local 10.96.0.0/16 dev lo": the Service CIDR; kube-proxy's rules (nat output
//	hook) translate ClusterIPs there, and what they do not translate stays in the namespace.
//
// Sockets are created inside the namespace by a locked OS thread (Listen) and then
// served from ordinary goroutines.
package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	linkCIDR = "/30"
	// ServiceCIDR is the API server's --service-cluster-ip-range. It is local inside every
	// namespace, so a connection to a ClusterIP kube-proxy has no rule for ends there (refused)
	// instead of following the default route out of the namespace.
	ServiceCIDR = "10.96.0.0/16"
	// Prefix of every namespace this package creates.
	Prefix = "kctest-"
	// MaxIndex bounds the number of environments side by side.
	MaxIndex = 10
)

// Net is the addressing of one environment.
type Net struct {
	Name       string // namespace name
	Index      int
	IPPrefix   string // first two octets of every pod and node IP, e.g. "10.213"
	PodSubnet  string // e.g. 10.213.0.0/16
	HostVethIP string // e.g. 10.214.255.253
	NsVethIP   string // e.g. 10.214.255.254
}

// ForIndex returns the addressing of environment index i.
func ForIndex(i int) Net {
	a, b := 213+2*i, 214+2*i
	return Net{Index: i, IPPrefix: fmt.Sprintf("10.%d", a), PodSubnet: fmt.Sprintf("10.%d.0.0/16", a),
		HostVethIP: fmt.Sprintf("10.%d.255.253", b), NsVethIP: fmt.Sprintf("10.%d.255.254", b)}
}

func routed(subnet string) bool {
	out, err := exec.Command("ip", "route", "show", subnet).CombinedOutput()
	return err == nil && strings.TrimSpace(string(out)) != ""
}

func run(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func names(pid int) (ns, hostIf, nsIf string) {
	return fmt.Sprintf("%s%d", Prefix, pid), fmt.Sprintf("kch%d", pid), fmt.Sprintf("kcn%d", pid)
}

// Create makes namespace kctest-<pid> with the veth pair and routes, on the first address
// block (index) no other environment routes. It first removes stale kctest-* namespaces
// whose owner process is gone.
//
// Environments started at the same moment (scripts/test starts the fault suite's beside the
// main one) would otherwise both see a block free and both route it: the choice and the
// routes are made under an exclusive lock on a machine-wide file.
func Create(pid int) (*Net, error) {
	unlock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	defer unlock()
	CleanStale()
	ns, hostIf, nsIf := names(pid)
	_ = Delete(ns)
	var n Net
	found := false
	for i := 0; i < MaxIndex; i++ {
		c := ForIndex(i)
		if !routed(c.PodSubnet) {
			n, found = c, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("all %d address blocks 10.213-10.232 are in use by other environments (%v)", MaxIndex, Live())
	}
	n.Name = ns
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf},
		{"link", "set", nsIf, "netns", ns},
		{"addr", "add", n.HostVethIP + linkCIDR, "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", n.NsVethIP + linkCIDR, "dev", nsIf},
		{"-n", ns, "link", "set", nsIf, "up"},
		{"-n", ns, "route", "add", "local", n.PodSubnet, "dev", "lo"},
		{"-n", ns, "route", "add", "local", ServiceCIDR, "dev", "lo"},
		{"-n", ns, "route", "add", "default", "via", n.HostVethIP},
		{"route", "add", n.PodSubnet, "via", n.NsVethIP, "dev", hostIf},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			_ = Delete(ns)
			return nil, err
		}
	}
	// Loose reverse-path filtering on our own link only.
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+hostIf+"/rp_filter", []byte("0"), 0o644)
	return &n, nil
}

// Delete removes a namespace (its veth pair goes with it) and the host route.
func Delete(ns string) error {
	pidStr := strings.TrimPrefix(ns, Prefix)
	if pid, err := strconv.Atoi(pidStr); err == nil {
		_, hostIf, _ := names(pid)
		_ = run("link", "del", hostIf)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
		return nil
	}
	return run("netns", "del", ns)
}

// CleanStale removes kctest-<pid> namespaces whose pid is no longer alive.
func CleanStale() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), Prefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), Prefix))
		if err != nil {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = Delete(e.Name())
		}
	}
}

// Live lists kctest-<pid> namespaces whose pid is alive.
func Live() []string {
	var out []string
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), Prefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), Prefix))
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != syscall.ESRCH {
			out = append(out, e.Name())
		}
	}
	return out
}

// within runs fn on an OS thread that is in namespace ns, then puts that thread back into
// the namespace it came from and releases it. The thread is not simply discarded: a child
// process started with Pdeathsig (the supervisor's components) gets its signal when the
// thread that forked it exits, and the runtime may have forked one from this thread. Only
// when the way back fails is the thread left locked, so that it is discarded and no
// goroutine ever runs in the wrong namespace.
func within(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

// Listen opens a TCP listener inside namespace ns. The socket stays in that namespace.
func Listen(ns string, addr string) (net.Listener, error) {
	var l net.Listener
	var lerr error
	if err := within(ns, func() { l, lerr = net.Listen("tcp4", addr) }); err != nil {
		return nil, err
	}
	return l, lerr
}

// DialContext opens a TCP connection from inside namespace ns (the socket stays there), e.g.
// to a Service's ClusterIP, which only kube-proxy's rules in that namespace translate.
func DialContext(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := within(ns, func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// lockFile serialises address-block allocation between environments on one machine.
const lockFile = "/run/kctest-netns.lock"

// lockMachine takes the machine-wide allocation lock; the returned func releases it.
func lockMachine() (func(), error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network namespace lock %s: %w", lockFile, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("network namespace lock %s: %w", lockFile, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
