// Package traffic is a bounded HTTP request loop run from inside the environment's network
// namespace, as clients on a node would: each request opens a new TCP connection from one of
// the given source addresses to a Service's ClusterIP (or a pod IP), so kube-proxy's rules
// choose the pod for each connection. It counts which pod and which image answered.
//
// Only the environment's own addresses are reachable: the target must be in the Service
// CIDR or the pod subnet, the sources in the pod subnet (local in the namespace, AnyIP).
package traffic

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// serviceCIDR is the API server's --service-cluster-ip-range (see internal/netns).
const serviceCIDR = "10.96.0.0/16"

// Limits keep the loop bounded whatever the caller asks.
const (
	maxRequests = 1_000_000
	maxDuration = 30 * time.Minute
	maxSources  = 256
)

// Result is one request.
type Result struct {
	// T is when the request was sent, Unix seconds with fraction.
	T      float64 `json:"t"`
	Source string  `json:"src"`
	Pod    string  `json:"pod,omitempty"`
	Image  string  `json:"image,omitempty"`
	Code   int     `json:"code,omitempty"`
	Err    string  `json:"err,omitempty"`
}

// Summary is what the loop prints at the end (one JSON object).
type Summary struct {
	Requests int                       `json:"requests"`
	Failed   int                       `json:"failed"`
	ByImage  map[string]int            `json:"byImage"`
	ByPod    map[string]int            `json:"byPod"`
	BySource map[string]map[string]int `json:"bySource"`
	Seconds  float64                   `json:"seconds"`
}

type options struct {
	netns, target, path, logPath, stopFile string
	sources                                []net.IP
	requests                               int
	duration, interval, timeout            time.Duration
}

// Main is `testenv traffic`.
func Main(args []string) int {
	fs := flag.NewFlagSet("traffic", flag.ContinueOnError)
	ns := fs.String("netns", os.Getenv("KC_POD_NETNS"), "network namespace of the environment (env file: KC_POD_NETNS)")
	subnet := fs.String("pod-subnet", os.Getenv("KC_POD_SUBNET"), "pod subnet of the environment (env file: KC_POD_SUBNET)")
	target := fs.String("target", "", "IP:PORT to send to: a ClusterIP (10.96.0.0/16) or a pod IP")
	path := fs.String("path", "/", "HTTP path")
	sources := fs.String("sources", "", "comma-separated source addresses in the pod subnet (default: <prefix>.250.100)")
	requests := fs.Int("requests", 0, "stop after this many requests in all (bound: 1000000)")
	duration := fs.Duration("duration", 0, "stop after this long (bound: 30m)")
	interval := fs.Duration("interval", 0, "pause between two requests of one source")
	timeout := fs.Duration("timeout", 2*time.Second, "per request")
	logPath := fs.String("log", "", "write every request as a JSON line here")
	stopFile := fs.String("stop-file", "", "stop early once this file exists")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o := options{netns: *ns, target: *target, path: *path, logPath: *logPath, stopFile: *stopFile,
		requests: *requests, duration: *duration, interval: *interval, timeout: *timeout}
	if err := o.check(*subnet, *sources); err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		return 2
	}
	sum, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "traffic:", err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(sum)
	return 0
}

func (o *options) check(subnet, sources string) error {
	if o.netns == "" {
		return errors.New("--netns (or KC_POD_NETNS) is required")
	}
	_, pods, err := net.ParseCIDR(subnet)
	if err != nil {
		return fmt.Errorf("--pod-subnet (or KC_POD_SUBNET) %q: %v", subnet, err)
	}
	_, svcs, _ := net.ParseCIDR(serviceCIDR)
	host, port, err := net.SplitHostPort(o.target)
	if err != nil {
		return fmt.Errorf("--target %q: %v", o.target, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !(svcs.Contains(ip) || pods.Contains(ip)) {
		return fmt.Errorf("--target %q: only IPv4 addresses of the environment (%s or %s)", o.target, serviceCIDR, subnet)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("--target %q: no port", o.target)
	}
	if sources == "" {
		p := pods.IP.To4()
		sources = fmt.Sprintf("%d.%d.250.100", p[0], p[1])
	}
	for _, s := range strings.Split(sources, ",") {
		sip := net.ParseIP(strings.TrimSpace(s))
		if sip == nil || sip.To4() == nil || !pods.Contains(sip) {
			return fmt.Errorf("--sources: %q is not an IPv4 address of the pod subnet %s", s, subnet)
		}
		o.sources = append(o.sources, sip)
	}
	if len(o.sources) > maxSources {
		return fmt.Errorf("--sources: at most %d", maxSources)
	}
	if o.requests <= 0 && o.duration <= 0 {
		return errors.New("give --requests or --duration (the loop is always bounded)")
	}
	if o.requests > maxRequests || o.duration > maxDuration {
		return fmt.Errorf("bounds: --requests at most %d, --duration at most %s", maxRequests, maxDuration)
	}
	return nil
}

func run(o options) (*Summary, error) {
	var logW *bufio.Writer
	if o.logPath != "" {
		f, err := os.Create(o.logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		logW = bufio.NewWriter(f)
		defer logW.Flush()
	}
	sum := &Summary{ByImage: map[string]int{}, ByPod: map[string]int{}, BySource: map[string]map[string]int{}}
	var mu sync.Mutex
	left := o.requests
	start := time.Now()
	deadline := time.Time{}
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	// take reserves one request of the bound; false once the loop is over
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if o.requests > 0 {
			if left == 0 {
				return false
			}
			left--
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return false
		}
		if o.stopFile != "" {
			if _, err := os.Stat(o.stopFile); err == nil {
				return false
			}
		}
		return true
	}
	record := func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		sum.Requests++
		bs := sum.BySource[r.Source]
		if bs == nil {
			bs = map[string]int{}
			sum.BySource[r.Source] = bs
		}
		if r.Err != "" || r.Code != http.StatusOK {
			sum.Failed++
			bs["(failed)"]++
		} else {
			sum.ByImage[r.Image]++
			sum.ByPod[r.Pod]++
			bs[r.Image]++
		}
		if logW != nil {
			b, _ := json.Marshal(r)
			_, _ = logW.Write(append(b, '\n'))
		}
	}
	nsFile, err := os.Open("/run/netns/" + o.netns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", o.netns, err)
	}
	defer nsFile.Close()
	var wg sync.WaitGroup
	errc := make(chan error, len(o.sources))
	for _, src := range o.sources {
		wg.Add(1)
		go func(src net.IP) {
			defer wg.Done()
			// This goroutine's thread enters the namespace for good: it is discarded when the
			// goroutine ends (never unlocked), so nothing else ever runs there.
			runtime.LockOSThread()
			if err := unix.Setns(int(nsFile.Fd()), unix.CLONE_NEWNET); err != nil {
				errc <- fmt.Errorf("setns %s: %w", o.netns, err)
				return
			}
			for take() {
				record(request(o, src))
				if o.interval > 0 {
					time.Sleep(o.interval)
				}
			}
		}(src)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}

// request sends one GET on a new connection from src (dialled on the calling, namespaced
// thread) and reads the answer's pod and image headers.
func request(o options, src net.IP) Result {
	now := time.Now()
	r := Result{T: float64(now.UnixNano()) / 1e9, Source: src.String()}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: o.timeout}
	c, err := d.Dial("tcp4", o.target)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer c.Close()
	_ = c.SetDeadline(now.Add(o.timeout))
	// Connection: close as a client without keep-alive: one connection, one choice of pod
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: testenv-traffic\r\nConnection: close\r\n\r\n", o.path, o.target); err != nil {
		r.Err = err.Error()
		return r
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	resp.Body.Close()
	r.Code, r.Pod, r.Image = resp.StatusCode, resp.Header.Get("X-Sim-Pod"), resp.Header.Get("X-Sim-Image")
	return r
}
