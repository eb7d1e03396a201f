package main

import (
	"os"
	"strings"
	"testing"
)

func script(t *testing.T) string {
	t.Helper()
	text, err := os.ReadFile("../../deploy/argocd/health.lua")
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// Each row a Deployment as JSON (the shapes of the phases, by hand; the real objects of every
// phase are checked by the controller's GitOps tests against testenv) and the health Argo CD
// shows for it.
func TestTheHealthOfEachShape(t *testing.T) {
	const brake = `"annotations": {"kubectl-canary.io/brake": "on"}`
	rows := []struct {
		name, object, status, message string
	}{
		{"settled", `{"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
			"status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}}`,
			"Healthy", ""},
		{"a rollout", `{"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 3},
			"status": {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3}}`,
			"Progressing", "1 out of 3 new replicas"},
		{"not observed yet", `{"metadata": {"name": "web", "generation": 4}, "spec": {"replicas": 3},
			"status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}}`,
			"Progressing", "observed deployment generation"},
		{"old pods terminating", `{"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 3},
			"status": {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}}`,
			"Progressing", "1 old replicas are pending termination"},
		{"paused by someone", `{"metadata": {"name": "web"}, "spec": {"replicas": 3, "paused": true}, "status": {}}`,
			"Suspended", "Deployment is paused"},
		{"past its deadline", `{"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 3},
			"status": {"observedGeneration": 3, "updatedReplicas": 1, "conditions": [
			{"type": "Available", "status": "True"},
			{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}}`,
			"Degraded", `Deployment "web" exceeded its progress deadline`},
		{"braked, before the hold", `{"metadata": {"name": "web", ` + brake + `}, "spec": {"replicas": 3},
			"status": {"replicas": 3, "updatedReplicas": 0}}`,
			"Progressing", "canary in progress, 0 pod(s)"},
		{"braked, not observed yet", `{"metadata": {"name": "web", "generation": 5, ` + brake + `}, "spec": {"replicas": 3, "paused": true},
			"status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 0}}`,
			"Progressing", "has yet to observe"},
		{"held", `{"metadata": {"name": "web", ` + brake + `}, "spec": {"replicas": 3, "paused": true},
			"status": {"replicas": 4, "updatedReplicas": 1}}`,
			"Progressing", "canary in progress, 1 pod(s)"},
		{"failed, resting on the stable pods", `{"metadata": {"name": "web", ` + brake + `}, "spec": {"replicas": 3, "paused": true},
			"status": {"replicas": 3, "updatedReplicas": 0, "availableReplicas": 3}}`,
			"Degraded", "the canary failed"},
	}
	for _, row := range rows {
		objects, err := decodeObjects(strings.NewReader(row.object))
		if err != nil {
			t.Fatalf("%s: %v", row.name, err)
		}
		health, err := Evaluate(script(t), objects[0])
		if err != nil {
			t.Fatalf("%s: %v", row.name, err)
		}
		if health.Status != row.status || !strings.Contains(health.Message, row.message) {
			t.Errorf("%s: %+v, want %s with %q", row.name, health, row.status, row.message)
		}
	}
}

// What Argo CD does with a script that returns something it cannot use.
func TestWhatArgoCDMakesOfABadResult(t *testing.T) {
	object := map[string]any{"spec": map[string]any{}}
	if health, err := Evaluate(`return {status = "Fine"}`, object); err != nil || health != (Health{"Unknown", invalidStatus}) {
		t.Errorf("an unknown status: %+v, %v", health, err)
	}
	for _, bad := range []string{`return "Healthy"`, `return {status = 1}`, `error("boom")`, `return string.format("%d", 1)`} {
		if health, err := Evaluate(bad, object); err == nil {
			t.Errorf("%s: %+v, want an error", bad, health)
		}
	}
	if _, err := Evaluate(`while true do end`, object); err == nil {
		t.Error("an endless script: no error, want the deadline's")
	}
}

// Numbers arrive as Lua numbers, integers printed without a fraction (as in the messages).
func TestNumbersAsArgoCDDecodesThem(t *testing.T) {
	objects, err := decodeObjects(strings.NewReader(`{"a": 3, "b": 2.5} {"a": 7}`))
	if err != nil || len(objects) != 2 {
		t.Fatalf("%v %v", objects, err)
	}
	health, err := Evaluate(`return {status = "Healthy", message = obj.a .. "/" .. (obj.b or "none")}`, objects[0])
	if err != nil || health.Message != "3/2.5" {
		t.Errorf("%+v %v", health, err)
	}
}

// docs/gitops.md quotes the script for readers to copy: the quote must be the file.
func TestTheDocQuotesTheScript(t *testing.T) {
	doc, err := os.ReadFile("../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(string(doc), "\n```lua\n")
	if !found {
		t.Fatal("docs/gitops.md has no ```lua block")
	}
	quote, _, found := strings.Cut(rest, "\n```\n")
	if !found {
		t.Fatal("docs/gitops.md's ```lua block does not end")
	}
	if quote+"\n" != script(t) {
		t.Errorf("docs/gitops.md's Lua block differs from deploy/argocd/health.lua: copy the file into the doc")
	}
	if strings.Count(string(doc), "\n```lua\n") != 1 {
		t.Error("docs/gitops.md has more than one ```lua block; the check reads the first")
	}
}
