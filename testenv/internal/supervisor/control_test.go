package supervisor

import (
	"errors"
	"strings"
	"testing"
)

// Commands that are not valid are answered with `usage` before anything is looked up or
// changed (the supervisor here has no components at all).
func TestFaultUsageErrors(t *testing.T) {
	s := &sup{}
	noProgress := func(string, ...interface{}) { t.Error("progress for an invalid command") }
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{nil, "empty command"},
		{[]string{"apiserver-explode"}, `unknown command "apiserver-explode"`},
		{[]string{"etcd-stop"}, `unknown command "etcd-stop"`},
		{[]string{"stop"}, `unknown command "stop"`},
		{[]string{"-stop"}, `unknown command "-stop"`},
		{[]string{"apiserver-freeze"}, "needs one argument, SECONDS"},
		{[]string{"apiserver-freeze", "0"}, "SECONDS must be a number > 0 and <= 600"},
		{[]string{"apiserver-freeze", "601"}, "SECONDS must be a number > 0 and <= 600"},
		{[]string{"apiserver-freeze", "ten"}, "SECONDS must be a number > 0 and <= 600"},
		{[]string{"scheduler-restart", "now"}, "takes no argument"},
		{[]string{"status", "all"}, "status takes no argument"},
	} {
		_, err := s.fault(c.args, noProgress)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("fault(%q) = %v, want a usage error with %q", c.args, err, c.msg)
		}
	}
}
