//! Facts about pods that several commands rely on, written once.

/// The pod-template label the controller adds to each ReplicaSet's template: which side
/// of a rollout a pod belongs to.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// The pod condition that says a pod serves traffic.
pub const READY_CONDITION: &str = "Ready";

/// Whether a pod is Ready, given its conditions as `(type, status)`: its `Ready` condition
/// is `True`. Only Ready pods are behind a Service, so this is what counts as serving.
///
/// ```
/// use canary_core::pod::is_ready;
///
/// assert!(is_ready([("PodScheduled", "True"), ("Ready", "True")]));
/// assert!(!is_ready([("Ready", "False")]));
/// assert!(!is_ready([]));
/// ```
pub fn is_ready<'a>(conditions: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
    conditions
        .into_iter()
        .any(|(type_, status)| type_ == READY_CONDITION && status == "True")
}
