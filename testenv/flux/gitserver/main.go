// Command gitserver serves the bare Git repositories under a directory over HTTP with git's own
// smart HTTP server, `git http-backend`, run as a CGI program for each request (net/http/cgi),
// so that Flux's source-controller clones from it as from any Git host, and the tests push to
// it as people push to theirs.
//
//	gitserver --root DIR --listen 127.0.0.1:0 --address-file FILE
//
// It listens on loopback only (the environment's own address), writes the address it bound
// to FILE once it accepts connections (the caller waits for the file), and serves until it is
// killed. Pushes are allowed without authentication (http.receivepack): the repositories are a
// test's own, and only local processes can reach the server.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
)

func main() {
	root := flag.String("root", "", "directory whose bare repositories (NAME.git) are served as /NAME.git")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	addressFile := flag.String("address-file", "", "file to write the bound address to once listening")
	flag.Parse()
	if *root == "" || *addressFile == "" {
		log.Fatal("gitserver: --root and --address-file are required (see the package comment)")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		log.Fatalf("gitserver: git is not installed (scripts/ensure-test-tools installs it): %v", err)
	}
	abs, err := filepath.Abs(*root)
	if err != nil {
		log.Fatalf("gitserver: --root %q: %v", *root, err)
	}
	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("gitserver: listening on %s: %v", *listen, err)
	}
	handler := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + abs,
			// Serve every repository under the root, without a git-daemon-export-ok file.
			"GIT_HTTP_EXPORT_ALL=1",
			// Pushes without a REMOTE_USER: http-backend refuses receive-pack to anonymous
			// clients unless the repository's http.receivepack is true.
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
		},
		InheritEnv: []string{"PATH", "HOME"},
		Stderr:     os.Stderr,
	}
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s %s", r.RemoteAddr, r.Method, r.URL)
		handler.ServeHTTP(w, r)
	})
	// Written after Listen: a client that reads the address can connect at once.
	tmp := *addressFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(listener.Addr().String()+"\n"), 0o644); err != nil {
		log.Fatalf("gitserver: %v", err)
	}
	if err := os.Rename(tmp, *addressFile); err != nil {
		log.Fatalf("gitserver: %v", err)
	}
	fmt.Fprintf(os.Stderr, "gitserver: serving %s on http://%s\n", abs, listener.Addr())
	log.Fatal(http.Serve(listener, logged))
}
