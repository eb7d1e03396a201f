package podsim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podSim is one simulated pod.
type podSim struct {
	s             *Sim
	namespace     string
	name          string
	uid           types.UID
	node          string
	hostIP        string
	podIP         string
	restartPolicy v1.RestartPolicy
	startTime     metav1.Time
	ctx           context.Context
	cancel        context.CancelFunc
	containers    []*container
	inits         []v1.ContainerStatus
	readinessGate []v1.PodConditionType
	ref           *v1.ObjectReference

	dirtyCh chan struct{}
	mu      sync.Mutex
	condLTT map[v1.PodConditionType]condState
}

type condState struct {
	status v1.ConditionStatus
	ltt    metav1.Time
}

func (p *podSim) dirty() {
	select {
	case p.dirtyCh <- struct{}{}:
	default:
	}
}

func (p *podSim) event(typ, reason, msg string) {
	if r := p.recorderFor(); r != nil {
		r.Event(p.ref, typ, reason, msg)
	}
}

func (p *podSim) containerByPort(port int) *container {
	for _, c := range p.containers {
		for _, cp := range c.ports {
			if int(cp) == port {
				return c
			}
		}
	}
	if port == 80 {
		for _, c := range p.containers {
			if len(c.ports) == 0 {
				return c
			}
		}
	}
	return nil
}

func (p *podSim) containerByName(name string) *container {
	for _, c := range p.containers {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (p *podSim) cond(t v1.PodConditionType, st v1.ConditionStatus, reason string, now metav1.Time) v1.PodCondition {
	cs, ok := p.condLTT[t]
	if !ok || cs.status != st {
		cs = condState{st, now}
		p.condLTT[t] = cs
	}
	return v1.PodCondition{Type: t, Status: st, Reason: reason, LastTransitionTime: cs.ltt}
}

// buildStatus computes the kubelet-owned part of the status.
func (p *podSim) buildStatus(current *v1.Pod) v1.PodStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := metav1.Now()
	var cs []v1.ContainerStatus
	allReady, anyStarted, allStarted := true, false, true
	for _, c := range p.containers {
		st := c.status()
		cs = append(cs, st)
		if !st.Ready {
			allReady = false
		}
		if st.State.Running != nil || st.LastTerminationState.Terminated != nil || st.State.Terminated != nil {
			anyStarted = true
		} else {
			allStarted = false
		}
	}
	_ = allStarted
	phase := v1.PodPending
	if anyStarted {
		phase = v1.PodRunning
		if p.restartPolicy != v1.RestartPolicyAlways {
			allTerm, allOK := true, true
			for _, s := range cs {
				if s.State.Terminated == nil {
					allTerm = false
				} else if s.State.Terminated.ExitCode != 0 {
					allOK = false
				}
			}
			if allTerm {
				if allOK {
					phase = v1.PodSucceeded
				} else if p.restartPolicy == v1.RestartPolicyNever {
					phase = v1.PodFailed
				}
			}
		}
	}
	crStatus, crReason := v1.ConditionTrue, ""
	if !allReady {
		crStatus, crReason = v1.ConditionFalse, "ContainersNotReady"
	}
	readyStatus, readyReason := crStatus, crReason
	if allReady && current != nil {
		for _, g := range p.readinessGate {
			ok := false
			for _, c := range current.Status.Conditions {
				if c.Type == g && c.Status == v1.ConditionTrue {
					ok = true
				}
			}
			if !ok {
				readyStatus, readyReason = v1.ConditionFalse, "ReadinessGatesNotReady"
			}
		}
	}
	conds := []v1.PodCondition{
		p.cond("PodReadyToStartContainers", v1.ConditionTrue, "", now),
		p.cond(v1.PodInitialized, v1.ConditionTrue, "", now),
		p.cond(v1.ContainersReady, crStatus, crReason, now),
		p.cond(v1.PodReady, readyStatus, readyReason, now),
	}
	var gen int64
	if current != nil {
		gen = current.Generation
	}
	for i := range conds {
		conds[i].ObservedGeneration = gen
	}
	return v1.PodStatus{
		ObservedGeneration:    gen,
		Phase:                 phase,
		Conditions:            conds,
		HostIP:                p.hostIP,
		HostIPs:               []v1.HostIP{{IP: p.hostIP}},
		PodIP:                 p.podIP,
		PodIPs:                []v1.PodIP{{IP: p.podIP}},
		StartTime:             &p.startTime,
		ContainerStatuses:     cs,
		InitContainerStatuses: p.inits,
		QOSClass:              qos(current),
	}
}

func qos(p *v1.Pod) v1.PodQOSClass {
	if p != nil && p.Status.QOSClass != "" {
		return p.Status.QOSClass
	}
	return v1.PodQOSBestEffort
}

// writer pushes status whenever a container changes, like the kubelet's status manager.
func (p *podSim) writer() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.dirtyCh:
		}
		// coalesce bursts
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(15 * time.Millisecond):
		}
		select {
		case <-p.dirtyCh:
		default:
		}
		// Like the kubelet's status manager, keep trying until the API server takes the
		// status (it may be restarting or frozen); each attempt sends the status as it is
		// then, so nothing that changed meanwhile is lost.
		backoff := 200 * time.Millisecond
		for attempt := 0; ; attempt++ {
			err := p.patchStatus()
			if err == nil || apierrors.IsNotFound(err) || p.ctx.Err() != nil {
				break
			}
			if attempt < 5 || attempt%20 == 0 {
				p.s.logf("status patch %s/%s (attempt %d): %v", p.namespace, p.name, attempt+1, err)
			}
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
			if backoff < 2*time.Second {
				backoff *= 2
			}
		}
	}
}

func (p *podSim) patchStatus() error {
	current := p.s.cachedPod(p.namespace, p.name)
	if current != nil && current.UID != p.uid {
		return nil
	}
	st := p.buildStatus(current)
	body, err := json.Marshal(map[string]interface{}{
		"metadata": map[string]interface{}{"uid": p.uid},
		"status":   st,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	_, err = p.s.client.CoreV1().Pods(p.namespace).Patch(ctx, p.name, types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch: %w", err)
	}
	return nil
}
