package traffic

import (
	"strings"
	"testing"
)

// The loop only ever targets the environment's own addresses and is always bounded.
func TestCheckRefusesWhatIsNotTheEnvironments(t *testing.T) {
	cases := []struct {
		target, sources string
		requests        int
		want            string
	}{
		{"192.0.2.1:80", "", 1, "only IPv4 addresses of the environment"},
		{"10.97.0.1:80", "", 1, "only IPv4 addresses of the environment"},
		{"10.96.0.10", "", 1, "--target"},
		{"10.96.0.10:80", "10.214.0.1", 1, "is not an IPv4 address of the pod subnet"},
		{"10.96.0.10:80", "", 0, "always bounded"},
		{"10.96.0.10:80", "", 2_000_000, "bounds"},
	}
	for _, c := range cases {
		o := options{netns: "kctest-1", target: c.target, requests: c.requests}
		err := o.check("10.213.0.0/16", c.sources)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("target %s sources %q requests %d: got %v, want an error with %q", c.target, c.sources, c.requests, err, c.want)
		}
	}
	ok := options{netns: "kctest-1", target: "10.96.0.10:80", requests: 5}
	if err := ok.check("10.213.0.0/16", "10.213.250.100,10.213.250.101"); err != nil || len(ok.sources) != 2 {
		t.Errorf("a ClusterIP target from two pod-subnet sources: %v %v", err, ok.sources)
	}
	def := options{netns: "kctest-1", target: "10.213.1.2:80", requests: 5}
	if err := def.check("10.213.0.0/16", ""); err != nil || def.sources[0].String() != "10.213.250.100" {
		t.Errorf("a pod IP target, default source: %v %v", err, def.sources)
	}
}
