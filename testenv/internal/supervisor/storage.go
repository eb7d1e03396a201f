package supervisor

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The StorageClasses of the environment. Both use the in-tree hostPath provisioner
// (kubernetes.io/host-path), which the real PersistentVolume binder of the controller-manager
// runs when started with --enable-hostpath-provisioner: a PVC of either class gets a new PV
// (hostPath /tmp/hostpath_pv/<uuid>, created by the controller-manager) bound to it, and the PV
// and its directory are deleted with the PVC (reclaim policy Delete). The simulated kubelets
// mount nothing; the pod only has to be scheduled, which the scheduler's VolumeBinding plugin
// allows once the PVC is bound (Immediate) or provisions for (WaitForFirstConsumer).
const (
	// StorageClassImmediate is the default class: PVCs are provisioned and bound as soon as
	// they are created, so a StatefulSet's pod is scheduled as soon as its PVC is bound.
	StorageClassImmediate = "testenv-hostpath"
	// StorageClassWFFC binds only once a pod using the PVC is scheduled (the scheduler's
	// PreBind step writes volume.kubernetes.io/selected-node and waits, polling every second,
	// for the binder): what most cloud default classes do.
	StorageClassWFFC    = "testenv-hostpath-wffc"
	hostPathProvisioner = "kubernetes.io/host-path"
)

func storageClasses(ctx context.Context, client kubernetes.Interface) error {
	del := v1.PersistentVolumeReclaimDelete
	imm, wffc := storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer
	for _, sc := range []*storagev1.StorageClass{
		{ObjectMeta: metav1.ObjectMeta{Name: StorageClassImmediate, Annotations: map[string]string{
			"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner: hostPathProvisioner, ReclaimPolicy: &del, VolumeBindingMode: &imm},
		{ObjectMeta: metav1.ObjectMeta{Name: StorageClassWFFC},
			Provisioner: hostPathProvisioner, ReclaimPolicy: &del, VolumeBindingMode: &wffc},
	} {
		if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("storage class %s: %w", sc.Name, err)
		}
	}
	return nil
}
