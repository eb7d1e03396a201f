// Command argocd-health prints the health Argo CD shows for Kubernetes objects under a custom
// Lua health check, evaluated by gopher-lua as Argo CD evaluates one (see Evaluate):
//
//	argocd-health --script deploy/argocd/health.lua < objects.json
//
// Standard input is a stream of JSON objects (for example the Deployment's versions a watch
// saw); standard output has one JSON line per object, {"status":"...","message":"..."}. Exit
// status 1 when an object cannot be read or the script fails on one (the error on standard
// error), 2 for a bad command line.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	scriptPath := flag.String("script", "", "the Lua health check (required)")
	flag.Parse()
	if *scriptPath == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	script, err := os.ReadFile(*scriptPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
	if err := evaluateAll(string(script), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}
