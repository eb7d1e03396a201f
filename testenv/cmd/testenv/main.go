// Command testenv is a multi-call binary: the supervisor of the kubectl-canary test
// environment and every component it runs (each in its own process, re-executing itself).
package main

import (
	"fmt"
	"os"

	"kubectl-canary/testenv/internal/components"
	"kubectl-canary/testenv/internal/podsim"
	"kubectl-canary/testenv/internal/supervisor"
	"kubectl-canary/testenv/internal/traffic"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: testenv <command> [flags]

commands:
  supervisor               start the whole environment and wait (used by scripts/testenv up)
  etcd                     embedded etcd
  kube-apiserver           the real kube-apiserver (flags as upstream)
  kube-controller-manager  the real kube-controller-manager (flags as upstream)
  kube-scheduler           the real kube-scheduler (flags as upstream)
  kube-proxy               the real kube-proxy (flags as upstream; run inside the pod netns)
  podsim                   the pod/node simulator standing in for kubelets
  traffic                  a bounded HTTP request loop from inside the pod netns (testenv traffic -h)
  fault COMMAND [ARG]      a fault command for the running environment (testenv fault --help)
  version                  print the pinned versions
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var code int
	switch cmd {
	case "supervisor":
		code = supervisor.Main(args)
	case "etcd":
		code = components.Etcd(args)
	case "kube-apiserver":
		code = components.APIServer(args)
	case "kube-controller-manager":
		code = components.ControllerManager(args)
	case "kube-scheduler":
		code = components.Scheduler(args)
	case "kube-proxy":
		code = components.KubeProxy(args)
	case "podsim":
		code = podsim.Main(args)
	case "traffic":
		code = traffic.Main(args)
	case "fault":
		code = supervisor.FaultMain(args)
	case "version":
		fmt.Println(components.Versions())
	case "-h", "--help", "help":
		usage()
	default:
		usage()
		code = 2
	}
	os.Exit(code)
}
