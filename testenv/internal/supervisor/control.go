package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The control socket: fault commands acting on the running environment (scripts/testenv
// fault). The supervisor owns the component processes, so it is the one that stops, starts,
// freezes and thaws them; a restarted component gets the same binary and arguments, so the
// API server comes back on the same address with the same certificates.
//
// Protocol (one command per connection): the client sends one line, `<command> [arg]\n`;
// the supervisor answers with zero or more `progress <text>` lines and one final line,
// `ok <text>` (done), `error <text>` (refused or failed; nothing was changed unless the text
// says so) or `usage <text>` (not a valid command), then closes the connection.

// controlSocket is the control socket's file name in the state dir.
const controlSocket = "control.sock"

// faultTargets maps the component part of a fault command to the component it acts on.
var faultTargets = map[string]string{
	"apiserver":          "kube-apiserver",
	"controller-manager": "kube-controller-manager",
	"scheduler":          "kube-scheduler",
}

// faultActions are the actions every fault target takes.
var faultActions = []string{"stop", "kill", "start", "restart", "freeze", "thaw"}

const (
	// stopGrace is how long a component may take to end after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// startTimeout is how long a restarted component may take to serve again.
	startTimeout = 60 * time.Second
	// maxFreeze bounds a freeze, so that a mistyped duration cannot hang the environment.
	maxFreeze = 10 * time.Minute
)

// freeze is a SIGSTOPped component; thawed is closed when it gets SIGCONT again.
type freeze struct {
	since  time.Time
	timer  *time.Timer
	thawed chan struct{}
}

// ControlUsage documents the fault commands (printed by `testenv fault` on bad usage).
const ControlUsage = `fault commands (TARGET: apiserver, controller-manager, scheduler):
  TARGET-stop            SIGTERM, wait until it has exited (SIGKILL after 5 s)
  TARGET-kill            SIGKILL at once (a crash: no graceful shutdown)
  TARGET-start           start it again (same binary, flags, address, certificates), wait until it serves
  TARGET-restart         stop, then start
  TARGET-freeze SECONDS  SIGSTOP, SIGCONT after SECONDS (0 < SECONDS <= 600); answers once thawed;
                         the thaw happens even if the client goes away
  TARGET-thaw            SIGCONT a frozen one now
  status                 one line per target: running/stopped/frozen and pid
`

func (s *sup) listenControl() error {
	path := filepath.Join(s.dir, controlSocket)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	s.control = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serveControl(c)
		}
	}()
	return nil
}

func (s *sup) serveControl(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Fprintf(c, "error reading the command: %v\n", err)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	progress := func(format string, args ...interface{}) {
		fmt.Fprintf(c, "progress %s\n", fmt.Sprintf(format, args...))
	}
	msg, err := s.fault(strings.Fields(line), progress)
	if err != nil {
		logf("fault %q: %v", strings.TrimSpace(line), err)
		kind := "error"
		var u usageError
		if errors.As(err, &u) {
			kind = "usage"
		}
		fmt.Fprintf(c, "%s %s\n", kind, oneLine(err.Error()))
		return
	}
	logf("fault %q: %s", strings.TrimSpace(line), msg)
	fmt.Fprintf(c, "ok %s\n", oneLine(msg))
}

// usageError is a command that is not valid (answered with `usage`).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...interface{}) error {
	return usageError{fmt.Sprintf(format, args...)}
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func (s *sup) proc(name string) *proc {
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// fault runs one control command.
func (s *sup) fault(args []string, progress func(string, ...interface{})) (string, error) {
	if len(args) == 0 {
		return "", usagef("empty command; %s", oneLine(ControlUsage))
	}
	if args[0] == "status" {
		if len(args) != 1 {
			return "", usagef("status takes no argument")
		}
		return s.faultStatus(progress), nil
	}
	cut := strings.LastIndex(args[0], "-")
	name, ok := "", false
	if cut > 0 {
		name, ok = faultTargets[args[0][:cut]]
	}
	action := args[0][cut+1:]
	if !ok || !contains(faultActions, action) {
		return "", usagef("unknown command %q; %s", args[0], oneLine(ControlUsage))
	}
	if action == "freeze" {
		if len(args) != 2 {
			return "", usagef("%s needs one argument, SECONDS (e.g. %s 10)", args[0], args[0])
		}
		secs, err := strconv.ParseFloat(args[1], 64)
		d := time.Duration(secs * float64(time.Second))
		if err != nil || secs <= 0 || d > maxFreeze {
			return "", usagef("%s: SECONDS must be a number > 0 and <= %d, got %q", args[0], int(maxFreeze.Seconds()), args[1])
		}
		return s.freeze(s.proc(name), d, progress)
	}
	if len(args) != 1 {
		return "", usagef("%s takes no argument, got %q", args[0], strings.Join(args[1:], " "))
	}
	p := s.proc(name)
	s.faults.Lock()
	defer s.faults.Unlock()
	if s.stopping.Load() {
		return "", errors.New("the environment is shutting down")
	}
	switch action {
	case "stop", "kill":
		return s.faultStop(p, action == "kill")
	case "start":
		return s.faultStart(p, progress)
	case "restart":
		stopped, err := s.faultStop(p, false)
		if err != nil {
			return "", err
		}
		progress("%s", stopped)
		return s.faultStart(p, progress)
	case "thaw":
		if p.frozen == nil {
			return "", fmt.Errorf("%s is not frozen", p.name)
		}
		d := time.Since(p.frozen.since)
		s.thaw(p)
		return fmt.Sprintf("%s thawed after %.1fs (pid %d)", p.name, d.Seconds(), p.cur.cmd.Process.Pid), nil
	}
	return "", fmt.Errorf("unknown action %q", action)
}

func contains(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

func (s *sup) faultStatus(progress func(string, ...interface{})) string {
	s.faults.Lock()
	defer s.faults.Unlock()
	targets := []string{"apiserver", "controller-manager", "scheduler"}
	for _, k := range targets {
		p := s.proc(faultTargets[k])
		switch {
		case p.cur.exited():
			progress("%s stopped", k)
		case p.frozen != nil:
			progress("%s frozen pid %d since %.1fs", k, p.cur.cmd.Process.Pid, time.Since(p.frozen.since).Seconds())
		default:
			progress("%s running pid %d", k, p.cur.cmd.Process.Pid)
		}
	}
	return fmt.Sprintf("%d targets", len(targets))
}

// faultStop stops p's process on purpose (SIGTERM, or SIGKILL for kill). Caller holds s.faults.
func (s *sup) faultStop(p *proc, kill bool) (string, error) {
	if p.cur.exited() {
		return "", fmt.Errorf("%s is not running (stopped by an earlier fault command); start it with its -start command", p.name)
	}
	pid := p.cur.cmd.Process.Pid
	begin := time.Now()
	if p.frozen != nil {
		s.thaw(p)
	}
	if kill {
		p.cur.expected.Store(true)
		_ = p.cur.cmd.Process.Kill()
		<-p.cur.done
		return fmt.Sprintf("%s killed (pid %d)", p.name, pid), nil
	}
	stop(p.name, p.cur, stopGrace, true)
	return fmt.Sprintf("%s stopped (pid %d) in %.1fs", p.name, pid, time.Since(begin).Seconds()), nil
}

// faultStart starts p again and waits until it serves. Caller holds s.faults.
func (s *sup) faultStart(p *proc, progress func(string, ...interface{})) (string, error) {
	if !p.cur.exited() {
		return "", fmt.Errorf("%s is already running (pid %d)", p.name, p.cur.cmd.Process.Pid)
	}
	begin := time.Now()
	if err := s.launch(p, os.O_APPEND); err != nil {
		return "", fmt.Errorf("starting %s: %w", p.name, err)
	}
	pid := p.cur.cmd.Process.Pid
	progress("%s started (pid %d), waiting until it serves", p.name, pid)
	if p.ready != nil {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := p.ready(ctx); err != nil {
			return "", fmt.Errorf("%s started (pid %d) but does not serve after %s: %v (see %s)", p.name, pid, startTimeout, err,
				filepath.Join(s.logs, p.name+".log"))
		}
	}
	return fmt.Sprintf("%s started (pid %d), serving after %.1fs", p.name, pid, time.Since(begin).Seconds()), nil
}

// freeze SIGSTOPs p and SIGCONTs it after d; it answers once p is thawed (by the timer, a
// thaw command or a stop), and the timer thaws p whether or not anybody still waits.
func (s *sup) freeze(p *proc, d time.Duration, progress func(string, ...interface{})) (string, error) {
	s.faults.Lock()
	if s.stopping.Load() {
		s.faults.Unlock()
		return "", errors.New("the environment is shutting down")
	}
	if p.cur.exited() {
		s.faults.Unlock()
		return "", fmt.Errorf("%s is not running; start it first", p.name)
	}
	if p.frozen != nil {
		s.faults.Unlock()
		return "", fmt.Errorf("%s is already frozen (since %.1fs)", p.name, time.Since(p.frozen.since).Seconds())
	}
	pid := p.cur.cmd.Process.Pid
	if err := p.cur.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.faults.Unlock()
		return "", fmt.Errorf("SIGSTOP %s (pid %d): %w", p.name, pid, err)
	}
	fr := &freeze{since: time.Now(), thawed: make(chan struct{})}
	p.frozen = fr
	fr.timer = time.AfterFunc(d, func() {
		s.faults.Lock()
		defer s.faults.Unlock()
		if p.frozen == fr {
			s.thaw(p)
		}
	})
	s.faults.Unlock()
	progress("%s frozen (pid %d) for %s", p.name, pid, d)
	<-fr.thawed
	return fmt.Sprintf("%s thawed after %.1fs (pid %d)", p.name, time.Since(fr.since).Seconds(), pid), nil
}

// thaw SIGCONTs a frozen p. Caller holds s.faults.
func (s *sup) thaw(p *proc) {
	fr := p.frozen
	if fr == nil {
		return
	}
	fr.timer.Stop()
	_ = p.cur.cmd.Process.Signal(syscall.SIGCONT)
	p.frozen = nil
	close(fr.thawed)
}
