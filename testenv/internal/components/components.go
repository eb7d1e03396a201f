// Package components wraps the upstream Kubernetes commands and embedded etcd so that one
// binary can run each of them in its own process.
package components

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// Versions reports the module versions linked into the binary.
func Versions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := version.Get()
	out := fmt.Sprintf("stamped %s (major %s, minor %s, commit %q, tree %s, built %s)\ngo %s\n",
		v.GitVersion, v.Major, v.Minor, v.GitCommit, v.GitTreeState, v.BuildDate, bi.GoVersion)
	for _, d := range bi.Deps {
		switch d.Path {
		case "k8s.io/kubernetes", "k8s.io/apiserver", "k8s.io/client-go", "go.etcd.io/etcd/server/v3":
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			out += d.Path + " " + v + "\n"
		}
	}
	return out
}

// APIServer runs the real kube-apiserver.
func APIServer(args []string) int {
	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// ControllerManager runs the real kube-controller-manager.
func ControllerManager(args []string) int {
	cmd := kcm.NewControllerManagerCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// Scheduler runs the real kube-scheduler.
func Scheduler(args []string) int {
	cmd := scheduler.NewSchedulerCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// KubeProxy runs the real kube-proxy. The supervisor starts it inside the environment's
// network namespace (`ip netns exec`), so its rules translate ClusterIPs there only.
func KubeProxy(args []string) int {
	cmd := proxy.NewProxyCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// Etcd runs an embedded single-member etcd until SIGTERM/SIGINT.
func Etcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "data directory")
	clientURL := fs.String("listen-client-url", "http://127.0.0.1:2379", "client URL")
	peerURL := fs.String("listen-peer-url", "http://127.0.0.1:2380", "peer URL")
	_ = fs.Parse(args)
	cu, err := url.Parse(*clientURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dataDir
	cfg.Name = "testenv"
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true
	cfg.QuotaBackendBytes = 4 << 30
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("etcd ready on", cu.String())
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		e.Close()
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Println("etcd: got", s)
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd error:", err)
		e.Close()
		return 1
	}
	e.Close()
	return 0
}
