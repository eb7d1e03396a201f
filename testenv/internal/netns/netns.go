// Package netns creates the network namespace that hosts every simulated pod and node IP.
//
// Layout (defaults):
//
//	host  <-- veth /30 10.214.255.253 ------ 10.214.255.254 --> netns kctest-<pid>
//	host route: 10.213.0.0/16 via 10.214.255.254
//	netns: "local 10.213.0.0/16 dev lo" (AnyIP) so every pod/node IP is local there.
//
// Sockets are created inside the namespace by a locked OS thread (Listen) and then
// served from ordinary goroutines.
package netns

import (
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
	// PodSubnet holds every node and pod IP.
	PodSubnet = "10.213.0.0/16"
	// HostVethIP is the host end of the veth link.
	HostVethIP = "10.214.255.253"
	// NsVethIP is the namespace end of the veth link.
	NsVethIP = "10.214.255.254"
	linkCIDR = "/30"
	// Prefix of every namespace this package creates.
	Prefix = "kctest-"
)

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

// Create makes namespace kctest-<pid> with the veth pair and routes. It first removes
// stale kctest-* namespaces whose owner process is gone.
func Create(pid int) (string, error) {
	CleanStale()
	if other := Live(); len(other) > 0 {
		return "", fmt.Errorf("another test environment owns %s (netns %v): only one per machine, since they share the subnet; stop it first (scripts/testenv down with its KC_TESTENV_DIR)", PodSubnet, other)
	}
	ns, hostIf, nsIf := names(pid)
	_ = Delete(ns)
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf},
		{"link", "set", nsIf, "netns", ns},
		{"addr", "add", HostVethIP + linkCIDR, "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", NsVethIP + linkCIDR, "dev", nsIf},
		{"-n", ns, "link", "set", nsIf, "up"},
		{"-n", ns, "route", "add", "local", PodSubnet, "dev", "lo"},
		{"-n", ns, "route", "add", "default", "via", HostVethIP},
		{"route", "replace", PodSubnet, "via", NsVethIP, "dev", hostIf},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			_ = Delete(ns)
			return "", err
		}
	}
	// Loose reverse-path filtering on our own link only.
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+hostIf+"/rp_filter", []byte("0"), 0o644)
	return ns, nil
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

// Listen opens a TCP listener inside namespace ns. The socket stays in that namespace.
func Listen(ns string, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: when this goroutine returns, the runtime
		// discards the thread, so no goroutine ever runs in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		l, err := net.Listen("tcp4", addr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}
