package supervisor

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"kubectl-canary/testenv/internal/pki"
)

// The real metrics-server behind the API server's aggregation layer, as a cluster runs it:
// front-proxy (request-header) authentication, its own identity with the upstream RBAC
// (manifests/base/rbac.yaml), a Service kube-system/metrics-server and the APIService
// v1beta1.metrics.k8s.io. No kube-proxy routes Service IPs here, so the API server runs with
// --enable-aggregator-routing and reaches metrics-server through the Service's
// EndpointSlice: the host end of the veth pair, where metrics-server listens.

const (
	metricsServerUser = "system:metrics-server"
	metricsAPIService = "v1beta1.metrics.k8s.io"
	// metricsResolution is metrics-server's scrape interval and rate window (its minimum).
	metricsResolution = "10s"
)

// frontProxy are the request-header (front-proxy) CA and the API server's proxy client
// certificate: the aggregation layer's authentication towards extension API servers.
type frontProxy struct {
	caFile, clientCert, clientKey string
}

func writeFrontProxy(dir string) (*frontProxy, error) {
	ca, err := pki.NewCA("kubectl-canary-testenv-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	fp := &frontProxy{caFile: filepath.Join(dir, "front-proxy-ca.crt")}
	if err := writeFile(fp.caFile, ca.CertPEM); err != nil {
		return nil, err
	}
	kp, err := ca.Issue("front-proxy-client", nil, nil, true, false)
	if err != nil {
		return nil, err
	}
	fp.clientCert, fp.clientKey, err = kp.Write(dir, "front-proxy-client")
	return fp, err
}

// apiServerFlags are the kube-apiserver flags of the aggregation layer (as kubeadm sets them).
func (fp *frontProxy) apiServerFlags() []string {
	return []string{
		"--requestheader-client-ca-file", fp.caFile,
		"--requestheader-allowed-names", "front-proxy-client",
		"--requestheader-username-headers", "X-Remote-User",
		"--requestheader-group-headers", "X-Remote-Group",
		"--requestheader-extra-headers-prefix", "X-Remote-Extra-",
		"--proxy-client-cert-file", fp.clientCert,
		"--proxy-client-key-file", fp.clientKey,
		"--enable-aggregator-routing=true",
	}
}

// metricsServerObjects creates what the upstream manifests create, for a client-certificate
// identity instead of a ServiceAccount, and an EndpointSlice to the host instead of pods.
func (s *sup) metricsServerObjects(ctx context.Context, client kubernetes.Interface, rc *rest.Config, caPEM []byte) error {
	subject := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: metricsServerUser}}
	crs := []*rbacv1.ClusterRole{
		{ObjectMeta: metav1.ObjectMeta{Name: "system:aggregated-metrics-reader", Labels: map[string]string{
			"rbac.authorization.k8s.io/aggregate-to-admin": "true", "rbac.authorization.k8s.io/aggregate-to-edit": "true",
			"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "system:metrics-server"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes/metrics"}, Verbs: []string{"get"}},
				{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}}},
	}
	for _, cr := range crs {
		if _, err := client.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("clusterrole %s: %w", cr.Name, err)
		}
	}
	crbs := []*rbacv1.ClusterRoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "system:metrics-server"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:metrics-server"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "metrics-server:system:auth-delegator"}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"}},
	}
	for _, crb := range crbs {
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("clusterrolebinding %s: %w", crb.Name, err)
		}
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "metrics-server-auth-reader", Namespace: metav1.NamespaceSystem},
		Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "extension-apiserver-authentication-reader"}}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("rolebinding %s: %w", rb.Name, err)
	}

	labels := map[string]string{"k8s-app": "metrics-server"}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: metav1.NamespaceSystem, Labels: labels},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(s.msPort))}}}}
	if _, err := client.CoreV1().Services(metav1.NamespaceSystem).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service metrics-server: %w", err)
	}
	ready, name, port := true, "https", int32(s.msPort)
	tcp := v1.ProtocolTCP
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-server", Namespace: metav1.NamespaceSystem, Labels: map[string]string{
			discoveryv1.LabelServiceName: "metrics-server", discoveryv1.LabelManagedBy: "testenv-supervisor"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{s.net.HostVethIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
	}
	if _, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceSystem).Create(ctx, eps, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("endpointslice metrics-server: %w", err)
	}

	agg, err := aggregator.NewForConfig(rc)
	if err != nil {
		return err
	}
	svcPort := int32(443)
	as := &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: metricsAPIService, Labels: labels},
		Spec: apiregv1.APIServiceSpec{Service: &apiregv1.ServiceReference{Namespace: metav1.NamespaceSystem, Name: "metrics-server", Port: &svcPort},
			Group: "metrics.k8s.io", Version: "v1beta1", CABundle: caPEM, GroupPriorityMinimum: 100, VersionPriority: 100}}
	if _, err := agg.ApiregistrationV1().APIServices().Create(ctx, as, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("apiservice %s: %w", metricsAPIService, err)
	}
	return nil
}

// metricsServerArgs are metrics-server's flags: its own serving certificate (from the
// environment's CA, in the APIService's caBundle), delegated authentication and
// authorization through its kubeconfig, the simulated kubelets' self-signed certificates
// not verified (as the API server does not verify them either).
func (s *sup) metricsServerArgs(kubeconfig, certFile, keyFile string) []string {
	return []string{
		"--kubeconfig", kubeconfig,
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--bind-address", s.net.HostVethIP,
		"--secure-port", strconv.Itoa(s.msPort),
		"--tls-cert-file", certFile,
		"--tls-private-key-file", keyFile,
		"--kubelet-insecure-tls",
		"--kubelet-preferred-address-types", "InternalIP",
		"--metric-resolution", metricsResolution,
		"--kubelet-request-timeout", "5s",
		"--v", "1",
	}
}

// waitAPIServiceAvailable waits until the aggregator reports the metrics API Available:
// until then discovery of metrics.k8s.io fails, which stalls namespace deletion.
func waitAPIServiceAvailable(ctx context.Context, rc *rest.Config) error {
	agg, err := aggregator.NewForConfig(rc)
	if err != nil {
		return err
	}
	last := "not found"
	for {
		as, err := agg.ApiregistrationV1().APIServices().Get(ctx, metricsAPIService, metav1.GetOptions{})
		if err == nil {
			for _, c := range as.Status.Conditions {
				if c.Type == apiregv1.Available {
					if c.Status == apiregv1.ConditionTrue {
						return nil
					}
					last = c.Reason + ": " + c.Message
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("APIService %s not available: %s", metricsAPIService, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
