package supervisor

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Exit codes of `testenv fault`.
const (
	faultOK         = 0 // the command was carried out
	faultFailed     = 1 // refused or failed; the error line says why
	faultUsage      = 2 // bad usage
	faultNotRunning = 3 // no environment runs in the state dir
)

// FaultMain is `testenv fault [--dir DIR] COMMAND [ARG]`: a client of the supervisor's
// control socket. It prints progress lines and the final answer; see ControlUsage.
func FaultMain(args []string) int {
	fs := flag.NewFlagSet("fault", flag.ContinueOnError)
	dir := fs.String("dir", "/tmp/kubectl-canary-testenv", "state directory of the running environment")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: testenv fault [--dir DIR] COMMAND [ARG]\n\n%s", ControlUsage)
	}
	if err := fs.Parse(args); err != nil {
		return faultUsage
	}
	if fs.NArg() == 0 || fs.NArg() > 2 {
		fs.Usage()
		return faultUsage
	}
	path := filepath.Join(*dir, controlSocket)
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv fault: no test environment answers at %s (%v); start one with scripts/testenv up\n", path, err)
		return faultNotRunning
	}
	defer c.Close()
	if _, err := fmt.Fprintln(c, strings.Join(fs.Args(), " ")); err != nil {
		fmt.Fprintf(os.Stderr, "testenv fault: sending the command: %v\n", err)
		return faultFailed
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		kind, text, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "progress":
			fmt.Println(text)
		case "ok":
			fmt.Println(text)
			return faultOK
		case "error":
			fmt.Fprintf(os.Stderr, "testenv fault: %s\n", text)
			return faultFailed
		case "usage":
			fmt.Fprintf(os.Stderr, "testenv fault: %s\n", text)
			return faultUsage
		}
	}
	fmt.Fprintf(os.Stderr, "testenv fault: the supervisor closed the connection without an answer (%v)\n", sc.Err())
	return faultFailed
}
