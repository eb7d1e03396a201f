package smoke

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// versionInfo is k8s.io/apimachinery/pkg/version.Info.
type versionInfo struct {
	Major        string `json:"major"`
	Minor        string `json:"minor"`
	GitVersion   string `json:"gitVersion"`
	GitCommit    string `json:"gitCommit"`
	GitTreeState string `json:"gitTreeState"`
	BuildDate    string `json:"buildDate"`
	GoVersion    string `json:"goVersion"`
	Platform     string `json:"platform"`
}

// pinnedKubernetes is the k8s.io/kubernetes version go.mod pins and its module date: what
// scripts/testenv build stamps into every component.
func pinnedKubernetes(t *testing.T) (version, date string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", `{{.Version}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}`, "k8s.io/kubernetes").Output()
	if err != nil {
		t.Fatalf("go list -m k8s.io/kubernetes: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("go list -m k8s.io/kubernetes: %q", out)
	}
	return f[0], f[1]
}

// checkStamped compares a component's version info with the pinned module.
func checkStamped(t *testing.T, what string, got versionInfo, version, date string) {
	t.Helper()
	m := regexp.MustCompile(`^v(\d+)\.(\d+)\.\d+$`).FindStringSubmatch(version)
	if m == nil {
		t.Fatalf("pinned version %q is not vX.Y.Z", version)
	}
	want := versionInfo{Major: m[1], Minor: m[2], GitVersion: version, GitTreeState: "clean", BuildDate: date}
	if got.GitVersion != want.GitVersion || got.Major != want.Major || got.Minor != want.Minor ||
		got.GitTreeState != want.GitTreeState || got.BuildDate != want.BuildDate {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
	if strings.Contains(got.GitCommit, "$Format") {
		t.Errorf("%s: gitCommit is the unstamped placeholder %q", what, got.GitCommit)
	}
	if !strings.HasPrefix(got.GoVersion, "go1.") || got.Platform != "linux/amd64" {
		t.Errorf("%s: goVersion %q platform %q", what, got.GoVersion, got.Platform)
	}
}

// The API server, discovery and the simulated kubelets report the pinned Kubernetes version,
// so kubectl (and anything deciding by server version) parses it.
func TestServerVersionStamped(t *testing.T) {
	loadEnv(t)
	version, date := pinnedKubernetes(t)

	cmd := exec.Command("kubectl", "version", "-o", "json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env["KUBECONFIG"])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl version: %v: %s", err, stderr.String())
	}
	var kv struct {
		Client versionInfo `json:"clientVersion"`
		Server versionInfo `json:"serverVersion"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &kv); err != nil {
		t.Fatalf("kubectl version -o json: %v: %s", err, stdout.String())
	}
	checkStamped(t, "kubectl version serverVersion", kv.Server, version, date)
	// kubectl parsed the server's version: it warns about the skew when it is over one minor
	cMinor, _ := strconv.Atoi(strings.TrimSuffix(kv.Client.Minor, "+"))
	sMinor, _ := strconv.Atoi(kv.Server.Minor)
	if d := sMinor - cMinor; d > 1 || d < -1 {
		if !strings.Contains(stderr.String(), "and server ("+kv.Server.Major+"."+kv.Server.Minor+")") {
			t.Errorf("kubectl %s against server %s: no skew warning naming the server version; stderr: %s",
				kv.Client.GitVersion, kv.Server.GitVersion, stderr.String())
		}
	}

	var disc versionInfo
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", "/version")), &disc); err != nil {
		t.Fatal(err)
	}
	checkStamped(t, "discovery /version", disc, version, date)

	var nodes struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				NodeInfo struct {
					KubeletVersion string `json:"kubeletVersion"`
				} `json:"nodeInfo"`
			} `json:"status"`
		} `json:"items"`
	}
	getJSON(t, &nodes, "get", "nodes")
	if len(nodes.Items) == 0 {
		t.Fatal("no nodes")
	}
	for _, n := range nodes.Items {
		if n.Status.NodeInfo.KubeletVersion != version {
			t.Errorf("node %s: kubeletVersion %q, want %q", n.Metadata.Name, n.Status.NodeInfo.KubeletVersion, version)
		}
	}

	// every component is the same stamped binary; ask each as upstream's --version does
	exe := "/proc/" + env["KC_TESTENV_PID"] + "/exe"
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		out, err := exec.Command(exe, c, "--version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "Kubernetes "+version {
			t.Errorf("%s --version: %q %v, want %q", c, out, err, "Kubernetes "+version)
		}
	}
}
