//! The canary planner: what a canary of a given size really is for a Deployment.
//!
//! A canary behind a plain Service gets a share of traffic equal to its share of Ready pods,
//! so a share such as 5% is exact only for some replica counts, and surge pods cost
//! capacity. [`plan`] lays this out for both modes; [`explain`] is the teaching view that
//! contrasts the native rolling update (where a hand-typed `kubectl rollout pause` can land)
//! with the steps kubectl-canary takes. Everything here is computed from
//! [`crate::rollout_math`]; nothing performs I/O.

use serde::{Deserialize, Serialize};

use crate::text::percent_text;

use crate::rollout_math::{
    CanaryMode, CanarySize, Fenceposts, IntOrPercent, ResolvedCanary, RolloutMathError,
    brake_sequence, brake_strategy, canary_pod_range, native_rollout_sequence, resolve_canary,
    resolve_fenceposts,
};

/// Errors of the planner's inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A resource quantity that is not a Kubernetes quantity.
    #[error("invalid resource quantity {input:?}: {reason}")]
    InvalidQuantity {
        /// What was given.
        input: String,
        /// Why it is not a quantity.
        reason: &'static str,
    },
    /// The arithmetic refused the input.
    #[error(transparent)]
    RolloutMath(#[from] RolloutMathError),
}

/// CPU and memory requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Resources {
    /// These requests `count` times over.
    pub fn times(self, count: i32) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_mul(i64::from(count)),
            memory_bytes: self.memory_bytes.saturating_mul(i64::from(count)),
        }
    }

    /// Sum of two requests.
    pub fn plus(self, other: Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    /// Whether nothing is requested.
    pub fn is_zero(self) -> bool {
        self.cpu_millis == 0 && self.memory_bytes == 0
    }
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPU, {} memory",
            format_cpu(self.cpu_millis),
            format_memory(self.memory_bytes)
        )
    }
}

/// CPU millicores as Kubernetes writes them: `250m`, `2`.
pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Memory bytes in the largest binary unit that divides them: `128Mi`, `1536Ki`.
pub fn format_memory(bytes: i64) -> String {
    for (suffix, factor) in [
        ("Ti", 1i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes != 0 && bytes % factor == 0 {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// A parsed quantity: `digits / 10^scale * base^exponent`, exact.
struct Quantity {
    digits: i128,
    decimal_places: u32,
    base: i128,
    exponent: i32,
}

/// Parses a Kubernetes resource quantity (`resource.Quantity`): a signed decimal number with
/// an optional suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal `n u m k M G T P E`, or an
/// exponent `e3`/`E3`.
fn parse_quantity(input: &str) -> Result<Quantity, PlanError> {
    let invalid = |reason| PlanError::InvalidQuantity {
        input: input.to_owned(),
        reason,
    };
    let number_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(input.len());
    let (number, suffix) = input.split_at(number_end);
    let (base, exponent) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| invalid("unknown suffix"))?;
            let exp: i32 = exp.parse().map_err(|_| invalid("invalid exponent"))?;
            (10, exp)
        }
    };
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    if number.starts_with('-') {
        return Err(invalid("a request cannot be negative"));
    }
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid("not a decimal number"));
    }
    if whole.len() + fraction.len() > 30 || !(-30..=60).contains(&exponent) {
        return Err(invalid("too large"));
    }
    let digits: i128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| invalid("not a decimal number"))?;
    Ok(Quantity {
        digits,
        decimal_places: fraction.len() as u32,
        base,
        exponent,
    })
}

impl Quantity {
    /// The quantity in units of `1/scale`, rounded up (Kubernetes rounds requests up too).
    fn ceil_in(&self, scale: i128) -> Option<i64> {
        let mut numerator = self.digits.checked_mul(scale)?;
        let mut denominator = 10i128.checked_pow(self.decimal_places)?;
        let power = self.base.checked_pow(self.exponent.unsigned_abs())?;
        if self.exponent >= 0 {
            numerator = numerator.checked_mul(power)?;
        } else {
            denominator = denominator.checked_mul(power)?;
        }
        let value =
            numerator.div_euclid(denominator) + i128::from(numerator.rem_euclid(denominator) != 0);
        i64::try_from(value).ok()
    }
}

/// A CPU quantity (`250m`, `0.5`, `2`) in millicores, rounded up.
pub fn parse_cpu_millis(quantity: &str) -> Result<i64, PlanError> {
    parse_quantity(quantity)?
        .ceil_in(1000)
        .ok_or_else(|| PlanError::InvalidQuantity {
            input: quantity.to_owned(),
            reason: "too large",
        })
}

/// A memory quantity (`128Mi`, `1G`, `1e9`) in bytes, rounded up.
pub fn parse_memory_bytes(quantity: &str) -> Result<i64, PlanError> {
    parse_units(quantity)
}

/// A plain quantity (`110`, `1k`) in whole units, rounded up: e.g. a node's allocatable pods.
pub fn parse_units(quantity: &str) -> Result<i64, PlanError> {
    parse_quantity(quantity)?
        .ceil_in(1)
        .ok_or_else(|| PlanError::InvalidQuantity {
            input: quantity.to_owned(),
            reason: "too large",
        })
}

/// What one schedulable node has and what its pods already request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCapacity {
    /// Node name.
    pub name: String,
    /// `status.allocatable` CPU and memory.
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allocatable_pods: i64,
    /// Requests of the pods bound to the node that are not finished.
    pub requested: Resources,
    /// Pods bound to the node that are not finished.
    pub pods: i64,
}

impl NodeCapacity {
    /// How many more pods requesting `per_pod` this node can take.
    fn room_for(&self, per_pod: Resources) -> i64 {
        let free_cpu = self.allocatable.cpu_millis - self.requested.cpu_millis;
        let free_memory = self.allocatable.memory_bytes - self.requested.memory_bytes;
        let by = |free: i64, each: i64| {
            if each <= 0 {
                i64::MAX
            } else {
                (free / each).max(0)
            }
        };
        by(free_cpu, per_pod.cpu_millis)
            .min(by(free_memory, per_pod.memory_bytes))
            .min((self.allocatable_pods - self.pods).max(0))
    }
}

/// What the planner knows about the cluster's capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ClusterCapacity {
    /// Planning without a cluster.
    Offline,
    /// The nodes could not be read; `reason` says why (e.g. RBAC forbids listing nodes).
    Unavailable {
        /// Why the capacity is unknown.
        reason: String,
    },
    /// Schedulable nodes with their free capacity.
    Nodes {
        /// The nodes new pods could go to.
        nodes: Vec<NodeCapacity>,
    },
}

/// Whether the cluster has room for a canary's extra pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "status"
)]
pub enum CapacityVerdict {
    /// The canary adds no pods (replace mode).
    NoExtraPods,
    /// The free allocatable capacity of the nodes holds every extra pod.
    Fits {
        /// Extra pods.
        extra_pods: i32,
    },
    /// Only `fitting` of `extra_pods` fit: the cluster autoscaler would have to add nodes,
    /// or the rest stay Pending.
    DoesNotFit {
        /// Extra pods.
        extra_pods: i32,
        /// How many of them the free capacity holds.
        fitting: i32,
    },
    /// The capacity was not checked.
    NotChecked {
        /// Why not.
        reason: String,
    },
}

impl std::fmt::Display for CapacityVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoExtraPods => f.write_str("no extra pods"),
            Self::Fits { extra_pods } => {
                write!(f, "free capacity holds the {extra_pods} extra pod(s)")
            }
            Self::DoesNotFit {
                extra_pods,
                fitting,
            } => write!(
                f,
                "free capacity holds only {fitting} of {extra_pods} extra pod(s): the cluster autoscaler would have to add nodes (a cost)"
            ),
            Self::NotChecked { reason } => write!(f, "not checked: {reason}"),
        }
    }
}

/// Places `extra_pods` pods requesting `per_pod` each on the nodes' free allocatable capacity
/// (`allocatable - requests of pods already bound`), as many per node as fit. Taints,
/// affinity and topology spread are not considered, so a `Fits` is necessary, not sufficient.
pub fn check_capacity(
    cluster: &ClusterCapacity,
    per_pod: Option<Resources>,
    extra_pods: i32,
) -> CapacityVerdict {
    if extra_pods <= 0 {
        return CapacityVerdict::NoExtraPods;
    }
    let nodes = match cluster {
        ClusterCapacity::Offline => {
            return CapacityVerdict::NotChecked {
                reason: "offline plan, no cluster to look at".to_owned(),
            };
        }
        ClusterCapacity::Unavailable { reason } => {
            return CapacityVerdict::NotChecked {
                reason: reason.clone(),
            };
        }
        ClusterCapacity::Nodes { nodes } => nodes,
    };
    let per_pod = per_pod.unwrap_or_default();
    let room: i64 = nodes
        .iter()
        .map(|node| node.room_for(per_pod))
        .fold(0i64, i64::saturating_add);
    let fitting = i32::try_from(room.min(i64::from(extra_pods))).unwrap_or(extra_pods);
    if fitting >= extra_pods {
        CapacityVerdict::Fits { extra_pods }
    } else {
        CapacityVerdict::DoesNotFit {
            extra_pods,
            fitting,
        }
    }
}

/// What to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The canary size asked for.
    pub target: CanarySize,
    /// Requests of one pod of the template (summed over containers), when known.
    pub pod_requests: Option<Resources>,
    /// The cluster's capacity, when known.
    pub cluster: ClusterCapacity,
}

/// One achievable canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryOption {
    /// Canary pods.
    pub canary_pods: i32,
    /// Stable pods beside them.
    pub stable_pods: i32,
    /// All pods while the canary runs.
    pub total_pods: i32,
    /// Pods beyond `spec.replicas`.
    pub extra_pods: i32,
    /// The canary's share of Ready pods, i.e. of traffic through a Service, in percent.
    pub traffic_share_percent: f64,
    /// Distance from a percentage target, in percentage points (absent for a pod count).
    pub off_target_points: Option<f64>,
    /// Whether this is the size `start` would use for the target.
    pub chosen: bool,
    /// Requests the extra pods add, when the template's requests are known.
    pub extra_requests: Option<Resources>,
    /// Whether the cluster has room for the extra pods.
    pub capacity: CapacityVerdict,
}

/// A replica count at which a percentage target is exact in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactSizing {
    /// `spec.replicas` to set.
    pub replicas: i32,
    /// Stable pods during the canary.
    pub stable_pods: i32,
    /// Canary pods.
    pub canary_pods: i32,
}

/// The plan for one mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModePlan {
    /// The mode.
    pub mode: CanaryMode,
    /// Why this mode cannot take the target, if it cannot.
    pub refused: Option<String>,
    /// Achievable sizes around the target, smallest first.
    pub options: Vec<CanaryOption>,
    /// The replica count nearest the current one at which a percentage target is exact;
    /// absent for a pod count, or when no replica count up to [`MAX_EXACT_REPLICAS`] works.
    pub exact: Option<ExactSizing>,
}

/// The largest Deployment the planner proposes to make a share exact.
pub const MAX_EXACT_REPLICAS: i32 = 10_000;

/// The canary plan for both modes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryPlan {
    /// The Deployment's `spec.replicas`.
    pub replicas: i32,
    /// The size asked for.
    pub target: CanarySize,
    /// Requests of one pod, when known.
    pub pod_requests: Option<Resources>,
    /// Surge first, then replace.
    pub modes: Vec<ModePlan>,
    /// Plain-language conclusions, most important first.
    pub advice: Vec<String>,
}

/// Plans a canary of `input.target` for `input.replicas` in both modes.
///
/// ```
/// use canary_core::plan::{ClusterCapacity, PlanInput, plan};
/// use canary_core::rollout_math::{CanaryMode, CanarySize};
///
/// // 10% of the traffic of a 10-replica Deployment, planned offline.
/// let plan = plan(&PlanInput {
///     replicas: 10,
///     target: CanarySize::Percent(10.0),
///     pod_requests: None,
///     cluster: ClusterCapacity::Offline,
/// })
/// .unwrap();
/// let surge = plan.modes.iter().find(|m| m.mode == CanaryMode::Surge).unwrap();
/// let chosen = surge.options.iter().find(|o| o.chosen).unwrap();
/// // One extra pod beside all ten: 1/11 of the traffic, the nearest surge gets to 10%.
/// assert_eq!((chosen.canary_pods, chosen.stable_pods), (1, 10));
/// // Replace mode takes one of the ten: exactly 10%.
/// let replace = plan.modes.iter().find(|m| m.mode == CanaryMode::Replace).unwrap();
/// let chosen = replace.options.iter().find(|o| o.chosen).unwrap();
/// assert_eq!((chosen.canary_pods, chosen.stable_pods), (1, 9));
/// ```
pub fn plan(input: &PlanInput) -> Result<CanaryPlan, PlanError> {
    if input.replicas < 0 {
        return Err(RolloutMathError::NegativeReplicas {
            replicas: input.replicas,
        }
        .into());
    }
    let modes: Vec<ModePlan> = [CanaryMode::Surge, CanaryMode::Replace]
        .into_iter()
        .map(|mode| plan_mode(input, mode))
        .collect();
    let advice = advise(input, &modes);
    Ok(CanaryPlan {
        replicas: input.replicas,
        target: input.target,
        pod_requests: input.pod_requests,
        modes,
        advice,
    })
}

fn plan_mode(input: &PlanInput, mode: CanaryMode) -> ModePlan {
    let replicas = input.replicas;
    let exact = match input.target {
        CanarySize::Percent(percent) => exact_sizing(percent, replicas, mode),
        CanarySize::Pods(_) => None,
    };
    let chosen = match resolve_canary(input.target, replicas, mode) {
        Ok(canary) => canary.pods,
        Err(err) => {
            return ModePlan {
                mode,
                refused: Some(err.to_string()),
                options: Vec::new(),
                exact,
            };
        }
    };
    let range = canary_pod_range(replicas, mode);
    let options = (chosen - 1..=chosen + 1)
        .filter(|pods| range.contains(pods))
        .map(|pods| {
            let canary = ResolvedCanary::of(pods, replicas, mode);
            let share = canary.traffic_share() * 100.0;
            let extra_pods = canary.extra_pods();
            CanaryOption {
                canary_pods: pods,
                stable_pods: canary.stable_pods,
                total_pods: canary.pods + canary.stable_pods,
                extra_pods,
                traffic_share_percent: share,
                off_target_points: match input.target {
                    CanarySize::Percent(target) => Some((share - target).abs()),
                    CanarySize::Pods(_) => None,
                },
                chosen: pods == chosen,
                extra_requests: input.pod_requests.map(|r| r.times(extra_pods)),
                capacity: check_capacity(&input.cluster, input.pod_requests, extra_pods),
            }
        })
        .collect();
    ModePlan {
        mode,
        refused: None,
        options,
        exact,
    }
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// The replica count nearest `replicas` at which `percent` is an exact share in `mode`.
///
/// The share as a reduced fraction `a/b`: surge needs `k/(N+k) = a/b`, i.e. `N = m(b-a)`,
/// `k = ma` (possible up to 50%); replace needs `k/N = a/b`, i.e. `N = mb`, `k = ma`
/// (below 100%). `m` is chosen so that N is nearest the current replicas.
pub fn exact_sizing(percent: f64, replicas: i32, mode: CanaryMode) -> Option<ExactSizing> {
    // Percent to 1e-9 of a point, as resolve_canary compares it.
    let numerator = (percent * 1e9).round() as i128;
    let denominator: i128 = 100_000_000_000;
    if numerator <= 0 {
        return None;
    }
    let divisor = gcd(numerator, denominator);
    let (a, b) = (numerator / divisor, denominator / divisor);
    let (unit_replicas, unit_stable) = match mode {
        CanaryMode::Surge if 2 * a <= b => (b - a, b - a),
        CanaryMode::Replace if a < b => (b, b - a),
        _ => return None,
    };
    let current = i128::from(replicas.max(1));
    let multiple = ((2 * current + unit_replicas) / (2 * unit_replicas)).max(1);
    let total = multiple * unit_replicas;
    if total > i128::from(MAX_EXACT_REPLICAS) {
        return None;
    }
    Some(ExactSizing {
        replicas: i32::try_from(total).ok()?,
        stable_pods: i32::try_from(multiple * unit_stable).ok()?,
        canary_pods: i32::try_from(multiple * a).ok()?,
    })
}

fn advise(input: &PlanInput, modes: &[ModePlan]) -> Vec<String> {
    let mut advice = Vec::new();
    let chosen = |mode: &ModePlan| mode.options.iter().find(|o| o.chosen).cloned();
    let surge = modes.iter().find(|m| m.mode == CanaryMode::Surge);
    let replace = modes.iter().find(|m| m.mode == CanaryMode::Replace);

    if let CanarySize::Percent(target) = input.target {
        let exact_now = modes
            .iter()
            .filter_map(chosen)
            .any(|o| o.off_target_points.is_some_and(|d| d < 1e-9));
        if !exact_now {
            let achieved: Vec<String> = modes
                .iter()
                .filter_map(|m| {
                    chosen(m).map(|o| {
                        format!(
                            "{} {} pod(s) gives {}",
                            m.mode,
                            o.canary_pods,
                            percent_text(o.traffic_share_percent)
                        )
                    })
                })
                .collect();
            advice.push(format!(
                "{} is not achievable with {} replicas: {}.",
                percent_text(target),
                input.replicas,
                achieved.join(", ")
            ));
        }
        let exact: Vec<String> = modes
            .iter()
            .filter_map(|m| {
                m.exact.map(|e| match m.mode {
                    CanaryMode::Surge => format!(
                        "{}+{} (surge: {} replicas and {} canary)",
                        e.stable_pods, e.canary_pods, e.replicas, e.canary_pods
                    ),
                    CanaryMode::Replace => format!(
                        "{} (replace: {} replicas, {} of them canary)",
                        e.replicas, e.replicas, e.canary_pods
                    ),
                })
            })
            .collect();
        if !exact.is_empty() {
            advice.push(format!(
                "{} is exact with {}.",
                percent_text(target),
                exact.join(" or ")
            ));
        }
    }

    if let Some(option) = surge.and_then(chosen) {
        match &option.capacity {
            CapacityVerdict::DoesNotFit {
                extra_pods,
                fitting,
            } => advice.push(format!(
                "Surge mode adds {extra_pods} pod(s){}, but the cluster's free allocatable capacity holds only {fitting}: the cluster autoscaler would have to add nodes (a cost), or the canary stays Pending. Replace mode needs no extra pods.",
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::Fits { extra_pods } => advice.push(format!(
                "Surge mode adds {extra_pods} pod(s){}; the free allocatable capacity holds them (taints and affinity not considered).",
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::NotChecked { reason } => advice.push(format!(
                "Surge mode adds {} pod(s){}; capacity check skipped: {reason}.",
                option.extra_pods,
                option
                    .extra_requests
                    .map(|r| format!(" requesting {r}"))
                    .unwrap_or_default()
            )),
            CapacityVerdict::NoExtraPods => {}
        }
    }
    if input.pod_requests.is_some_and(Resources::is_zero) {
        advice.push(
            "The pod template requests no CPU or memory: the scheduler cannot see what canary pods cost.".to_owned(),
        );
    }
    if let Some(refused) = replace.and_then(|m| m.refused.as_ref()) {
        advice.push(format!("Replace mode: {refused}."));
    }
    if let Some(refused) = surge.and_then(|m| m.refused.as_ref()) {
        advice.push(format!("Surge mode: {refused}."));
    }
    advice
}

/// Where a hand-typed `kubectl rollout pause` can stop a native rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseLanding {
    /// The controller rests here while new pods start: a pause typed now lands here.
    Rests,
    /// The state lasts only between two API writes of the controller: a pause lands here
    /// only by winning a race of milliseconds.
    Race,
    /// The rollout is complete; there is nothing left to pause.
    Complete,
}

/// One state of the native rolling update, for the teaching view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeStep {
    /// Old ReplicaSets' pods.
    pub old_pods: i32,
    /// New ReplicaSet's pods.
    pub new_pods: i32,
    /// New pods available when this state is reached.
    pub new_available: i32,
    /// All pods.
    pub total_pods: i32,
    /// Share of the new version once its pods are Ready, in percent.
    pub new_share_percent: f64,
    /// Whether a hand-typed pause can land here.
    pub pause: PauseLanding,
    /// Whether this state holds exactly the wanted canary (new pods = k, stable pods as
    /// the mode keeps them).
    pub is_wanted_canary: bool,
}

/// One step kubectl-canary takes, with the commands a person would type for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStep {
    /// What the step does.
    pub title: String,
    /// Why it is done this way.
    pub why: String,
    /// The kubectl commands that do the same by hand.
    pub kubectl: Vec<String>,
    /// (old, new) ReplicaSet sizes the controller writes during this step.
    pub states: Vec<(i32, i32)>,
}

/// The Deployment as the teaching view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainInput {
    /// Deployment name, when planning against a cluster.
    pub deployment: Option<String>,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The Deployment's own maxSurge.
    pub max_surge: IntOrPercent,
    /// The Deployment's own maxUnavailable.
    pub max_unavailable: IntOrPercent,
    /// The Deployment's own minReadySeconds.
    pub min_ready_seconds: i32,
    /// The Deployment's own progressDeadlineSeconds.
    pub progress_deadline_seconds: i32,
    /// Container names of the pod template (the image is set per container).
    pub containers: Vec<String>,
    /// The Deployment's label selector (`app=web`), when known.
    pub selector: Option<String>,
    /// The canary wanted.
    pub canary: ResolvedCanary,
    /// The brake's minReadySeconds.
    pub brake_seconds: i32,
}

/// The teaching view: the native rollout against kubectl-canary's steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `spec.replicas`.
    pub replicas: i32,
    /// The Deployment's own maxSurge.
    pub max_surge: IntOrPercent,
    /// The Deployment's own maxUnavailable.
    pub max_unavailable: IntOrPercent,
    /// What they resolve to for `replicas`.
    pub fenceposts: Fenceposts,
    /// The native rollout, state by state, when pods become available one at a time.
    pub native: Vec<NativeStep>,
    /// The canary wanted.
    pub canary: ResolvedCanary,
    /// Whether the native rollout ever rests at the wanted canary.
    pub native_rests_at_canary: bool,
    /// What kubectl-canary does instead.
    pub steps: Vec<ToolStep>,
    /// Conclusions in plain words.
    pub summary: Vec<String>,
}

/// Builds the teaching view for `input`.
pub fn explain(input: &ExplainInput) -> Result<Explanation, PlanError> {
    let replicas = input.replicas;
    let fenceposts = resolve_fenceposts(input.max_surge, input.max_unavailable, replicas)?;
    let canary = input.canary;
    let wanted = (canary.stable_pods, canary.pods);
    let sequence = native_rollout_sequence(replicas, input.max_surge, input.max_unavailable)?;
    let last = sequence.len().saturating_sub(1);
    let native: Vec<NativeStep> = sequence
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let total = state.old_rs + state.new_rs;
            NativeStep {
                old_pods: state.old_rs,
                new_pods: state.new_rs,
                new_available: state.new_available,
                total_pods: total,
                new_share_percent: if total == 0 {
                    0.0
                } else {
                    f64::from(state.new_rs) * 100.0 / f64::from(total)
                },
                pause: if index == last {
                    PauseLanding::Complete
                } else if state.resting {
                    PauseLanding::Rests
                } else {
                    PauseLanding::Race
                },
                is_wanted_canary: state.sizes() == wanted,
            }
        })
        .collect();
    let native_rests_at_canary = native
        .iter()
        .any(|s| s.is_wanted_canary && s.pause == PauseLanding::Rests);
    let steps = tool_steps(input);
    let summary = explain_summary(input, fenceposts, &native, native_rests_at_canary);
    Ok(Explanation {
        replicas,
        max_surge: input.max_surge,
        max_unavailable: input.max_unavailable,
        fenceposts,
        native,
        canary,
        native_rests_at_canary,
        steps,
        summary,
    })
}

fn explain_summary(
    input: &ExplainInput,
    fenceposts: Fenceposts,
    native: &[NativeStep],
    rests_at_canary: bool,
) -> Vec<String> {
    let canary = input.canary;
    let mut summary = vec![format!(
        "maxSurge {} and maxUnavailable {} of {} replicas resolve to {} surge pod(s) (rounded up) and {} unavailable (rounded down).",
        input.max_surge,
        input.max_unavailable,
        input.replicas,
        fenceposts.max_surge,
        fenceposts.max_unavailable
    )];
    let resting: Vec<String> = native
        .iter()
        .filter(|s| s.pause == PauseLanding::Rests)
        .map(|s| format!("({}, {})", s.old_pods, s.new_pods))
        .collect();
    summary.push(format!(
        "A hand-typed `kubectl rollout pause` lands, while new pods start, in one of the (old, new) states {}; any other state only by winning a race against the controller.",
        resting.join(", ")
    ));
    let wanted = format!(
        "{} stable + {} canary ({} mode, {} of traffic)",
        canary.stable_pods,
        canary.pods,
        canary.mode,
        percent_text(canary.traffic_share() * 100.0)
    );
    if rests_at_canary {
        summary.push(format!(
            "The native rollout does rest at {wanted}, but pausing there is still a race with pods becoming Ready: type the pause too late and it has moved on."
        ));
    } else {
        summary.push(format!(
            "The native rollout never rests at {wanted}: no hand-typed pause can hold that canary."
        ));
    }
    summary.push(format!(
        "kubectl-canary sets maxSurge={} maxUnavailable={} and minReadySeconds={} in the same update as the new image: canary pods never become Available, so the controller cannot go past {} canary pod(s), and the pause that follows is not a race.",
        brake_strategy(canary.mode, canary.pods).max_surge,
        brake_strategy(canary.mode, canary.pods).max_unavailable,
        input.brake_seconds,
        canary.pods
    ));
    summary
}

fn tool_steps(input: &ExplainInput) -> Vec<ToolStep> {
    let canary = input.canary;
    let name = input
        .deployment
        .clone()
        .unwrap_or_else(|| "DEPLOYMENT".to_owned());
    let brake = brake_strategy(canary.mode, canary.pods);
    let containers = if input.containers.is_empty() {
        vec!["CONTAINER".to_owned()]
    } else {
        input.containers.clone()
    };
    let container_patch = containers
        .iter()
        .map(|c| format!(r#"{{"name":"{c}","image":"NEW_IMAGE"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let selector = input
        .selector
        .clone()
        .unwrap_or_else(|| "SELECTOR".to_owned());
    let states = brake_sequence(canary.replicas, canary.mode, canary.pods);
    let original_strategy = format!(
        r#""strategy":{{"rollingUpdate":{{"maxSurge":{},"maxUnavailable":{}}}}}"#,
        json_int_or_percent(input.max_surge),
        json_int_or_percent(input.max_unavailable)
    );
    vec![
        ToolStep {
            title: "Record everything that will change".to_owned(),
            why: format!(
                "The template, strategy, minReadySeconds, progressDeadlineSeconds and paused are kept in the ConfigMap {name}.kubectl-canary, owned by the Deployment; creating it is the lock, and every later step (or a rerun after a crash) works from it."
            ),
            kubectl: vec![
                format!("kubectl get deployment {name} -o yaml > {name}.before.yaml"),
                format!(
                    "kubectl create configmap {name}.kubectl-canary --from-file=deployment={name}.before.yaml"
                ),
            ],
            states: Vec::new(),
        },
        ToolStep {
            title: format!(
                "Set the new image and the brake in one update (maxSurge={}, maxUnavailable={})",
                brake.max_surge, brake.max_unavailable
            ),
            why: format!(
                "One write with a resourceVersion precondition (NEW_IMAGE: the canary's image): the controller creates the canary ReplicaSet and stops at {} pod(s), because with minReadySeconds={} no canary pod becomes Available. Pausing first and then setting the image would create no ReplicaSet at all.",
                canary.pods, input.brake_seconds
            ),
            kubectl: vec![
                format!(
                    "kubectl get deployment {name} -o jsonpath='{{.metadata.resourceVersion}}'"
                ),
                format!(
                    r#"kubectl patch deployment {name} --type=strategic -p '{{"metadata":{{"resourceVersion":"RESOURCE_VERSION"}},"spec":{{"minReadySeconds":{},"progressDeadlineSeconds":{},"strategy":{{"rollingUpdate":{{"maxSurge":{},"maxUnavailable":{}}}}},"template":{{"spec":{{"containers":[{container_patch}]}}}}}}}}'"#,
                    input.brake_seconds,
                    i64::from(input.brake_seconds) + 1,
                    brake.max_surge,
                    brake.max_unavailable
                ),
            ],
            states,
        },
        ToolStep {
            title: format!("Wait until the canary ReplicaSet has {} replicas and the controller saw the update", canary.pods),
            why: "The pause must come after the controller acted on the update, or it freezes the Deployment before the canary exists.".to_owned(),
            kubectl: vec![
                format!("kubectl get replicasets -l {selector} -w"),
                format!(
                    "kubectl get deployment {name} -o jsonpath='{{.metadata.generation}} {{.status.observedGeneration}}'"
                ),
            ],
            states: Vec::new(),
        },
        ToolStep {
            title: "Pause".to_owned(),
            why: format!(
                "With the brake on the rollout cannot move past {} canary pod(s), so the pause is not a race; the brake stays on while the canary runs, so even a resume by hand cannot roll further.",
                canary.pods
            ),
            kubectl: vec![format!("kubectl rollout pause deployment/{name}")],
            states: Vec::new(),
        },
        ToolStep {
            title: "Promote: restore the strategy and let the rollout finish".to_owned(),
            why: "One update: resume, the original maxSurge/maxUnavailable, minReadySeconds and progressDeadlineSeconds.".to_owned(),
            kubectl: vec![format!(
                r#"kubectl patch deployment {name} --type=merge -p '{{"spec":{{"paused":false,"minReadySeconds":{},"progressDeadlineSeconds":{},{original_strategy}}}}}'"#,
                input.min_ready_seconds, input.progress_deadline_seconds
            )],
            states: Vec::new(),
        },
        ToolStep {
            title: "Or abort: put the recorded template back in one update".to_owned(),
            why: format!("`kubectl rollout undo` refuses a paused Deployment, and resume-then-undo lets the rollout roll forward in between; restoring the recorded template, strategy and settings in one update works while paused, and the stable ReplicaSet becomes the new one again. TEMPLATE is .spec.template of {name}.before.yaml, as JSON."),
            kubectl: vec![format!(
                r#"kubectl patch deployment {name} --type=merge -p '{{"metadata":{{"resourceVersion":"RESOURCE_VERSION"}},"spec":{{"paused":false,"template":TEMPLATE,"minReadySeconds":{},"progressDeadlineSeconds":{},{original_strategy}}}}}'"#,
                input.min_ready_seconds, input.progress_deadline_seconds
            )],
            states: Vec::new(),
        },
    ]
}

/// An IntOrPercent as JSON inside a patch.
fn json_int_or_percent(value: IntOrPercent) -> String {
    match value {
        IntOrPercent::Int(v) => v.to_string(),
        IntOrPercent::Percent(_) => format!("\"{value}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout_math::stable_pods_beside_canary;

    fn node(
        name: &str,
        cpu: i64,
        memory: i64,
        requested_cpu: i64,
        requested_memory: i64,
    ) -> NodeCapacity {
        NodeCapacity {
            name: name.to_owned(),
            allocatable: Resources {
                cpu_millis: cpu,
                memory_bytes: memory,
            },
            allocatable_pods: 110,
            requested: Resources {
                cpu_millis: requested_cpu,
                memory_bytes: requested_memory,
            },
            pods: 10,
        }
    }

    const MI: i64 = 1 << 20;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(parse_cpu_millis("250m"), Ok(250));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("2"), Ok(2000));
        assert_eq!(parse_cpu_millis("1.0005"), Ok(1001));
        assert_eq!(parse_cpu_millis("100u"), Ok(1));
        assert_eq!(parse_memory_bytes("128Mi"), Ok(128 * MI));
        assert_eq!(parse_memory_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory_bytes("1.5Gi"), Ok(1536 * MI));
        assert_eq!(parse_memory_bytes("1e3"), Ok(1000));
        assert_eq!(parse_memory_bytes("129M"), Ok(129_000_000));
        for bad in ["", "abc", "1Xi", "-1", "1.2.3", "m", "1e"] {
            assert!(parse_memory_bytes(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_memory(128 * MI), "128Mi");
        assert_eq!(format_memory(1000), "1000");
    }

    #[test]
    fn capacity_counts_pods_per_node() {
        let pod = Resources {
            cpu_millis: 500,
            memory_bytes: 256 * MI,
        };
        // Node a has 1.2 CPU free (2 pods by CPU), node b 512Mi free (2 pods by memory).
        let nodes = ClusterCapacity::Nodes {
            nodes: vec![
                node("a", 4000, 8192 * MI, 2800, 0),
                node("b", 8000, 1024 * MI, 0, 512 * MI),
            ],
        };
        assert_eq!(
            check_capacity(&nodes, Some(pod), 4),
            CapacityVerdict::Fits { extra_pods: 4 }
        );
        assert_eq!(
            check_capacity(&nodes, Some(pod), 5),
            CapacityVerdict::DoesNotFit {
                extra_pods: 5,
                fitting: 4
            }
        );
        assert_eq!(
            check_capacity(&nodes, Some(pod), 0),
            CapacityVerdict::NoExtraPods
        );
        // Without requests only the pod count limits.
        let full = ClusterCapacity::Nodes {
            nodes: vec![NodeCapacity {
                pods: 109,
                ..node("c", 1000, MI, 1000, MI)
            }],
        };
        assert_eq!(
            check_capacity(&full, Some(Resources::default()), 2),
            CapacityVerdict::DoesNotFit {
                extra_pods: 2,
                fitting: 1
            }
        );
        assert!(matches!(
            check_capacity(&ClusterCapacity::Offline, Some(pod), 1),
            CapacityVerdict::NotChecked { .. }
        ));
    }

    #[test]
    fn five_percent_of_ten_needs_nineteen_plus_one_or_twenty() {
        let plan = plan(&PlanInput {
            replicas: 10,
            target: "5%".parse().unwrap(),
            pod_requests: Some(Resources {
                cpu_millis: 100,
                memory_bytes: 128 * MI,
            }),
            cluster: ClusterCapacity::Offline,
        })
        .unwrap();
        let surge = &plan.modes[0];
        assert_eq!(surge.mode, CanaryMode::Surge);
        let chosen = surge.options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            (chosen.canary_pods, chosen.stable_pods, chosen.extra_pods),
            (1, 10, 1)
        );
        assert!((chosen.traffic_share_percent - 100.0 / 11.0).abs() < 1e-9);
        assert_eq!(
            chosen.extra_requests,
            Some(Resources {
                cpu_millis: 100,
                memory_bytes: 128 * MI
            })
        );
        assert_eq!(
            surge
                .options
                .iter()
                .map(|o| o.canary_pods)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            surge.exact,
            Some(ExactSizing {
                replicas: 19,
                stable_pods: 19,
                canary_pods: 1
            })
        );
        let replace = &plan.modes[1];
        let chosen = replace.options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            (chosen.canary_pods, chosen.stable_pods, chosen.extra_pods),
            (1, 9, 0)
        );
        assert_eq!(chosen.capacity, CapacityVerdict::NoExtraPods);
        assert_eq!(
            replace.exact,
            Some(ExactSizing {
                replicas: 20,
                stable_pods: 19,
                canary_pods: 1
            })
        );
        assert!(
            plan.advice[0].contains("5% is not achievable with 10 replicas"),
            "{:?}",
            plan.advice
        );
        assert!(
            plan.advice[1].contains("19+1") && plan.advice[1].contains("20 (replace"),
            "{:?}",
            plan.advice
        );
    }

    #[test]
    fn exact_sizing_scales_to_the_current_replicas() {
        assert_eq!(
            exact_sizing(5.0, 38, CanaryMode::Surge),
            Some(ExactSizing {
                replicas: 38,
                stable_pods: 38,
                canary_pods: 2
            })
        );
        assert_eq!(
            exact_sizing(2.5, 10, CanaryMode::Replace),
            Some(ExactSizing {
                replicas: 40,
                stable_pods: 39,
                canary_pods: 1
            })
        );
        assert_eq!(
            exact_sizing(50.0, 4, CanaryMode::Surge),
            Some(ExactSizing {
                replicas: 4,
                stable_pods: 4,
                canary_pods: 4
            })
        );
        // Above 50% a surge canary cannot be exact; 100% is never a canary.
        assert_eq!(exact_sizing(60.0, 10, CanaryMode::Surge), None);
        assert_eq!(exact_sizing(100.0, 10, CanaryMode::Replace), None);
        // 33.333% would need 100000 replicas or more.
        assert_eq!(exact_sizing(33.333, 10, CanaryMode::Replace), None);
    }

    #[test]
    fn surge_that_does_not_fit_says_autoscaler_and_suggests_replace() {
        let plan = plan(&PlanInput {
            replicas: 4,
            target: CanarySize::Pods(2),
            pod_requests: Some(Resources {
                cpu_millis: 1000,
                memory_bytes: 0,
            }),
            cluster: ClusterCapacity::Nodes {
                nodes: vec![node("a", 4000, 0, 3500, 0)],
            },
        })
        .unwrap();
        let chosen = plan.modes[0].options.iter().find(|o| o.chosen).unwrap();
        assert_eq!(
            chosen.capacity,
            CapacityVerdict::DoesNotFit {
                extra_pods: 2,
                fitting: 0
            }
        );
        let advice = plan.advice.join("\n");
        assert!(
            advice.contains("cluster autoscaler would have to add nodes"),
            "{advice}"
        );
        assert!(
            advice.contains("Replace mode needs no extra pods"),
            "{advice}"
        );
        // A pod count is its own exact size: no replica suggestion.
        assert_eq!(plan.modes[0].exact, None);
    }

    #[test]
    fn refused_modes_are_explained() {
        let plan = plan(&PlanInput {
            replicas: 1,
            target: CanarySize::Pods(1),
            pod_requests: None,
            cluster: ClusterCapacity::Unavailable {
                reason: "nodes is forbidden".to_owned(),
            },
        })
        .unwrap();
        assert!(
            plan.modes[1]
                .refused
                .as_deref()
                .unwrap()
                .contains("at least one stable pod")
        );
        assert!(plan.modes[1].options.is_empty());
        let advice = plan.advice.join("\n");
        assert!(
            advice.contains("capacity check skipped: nodes is forbidden"),
            "{advice}"
        );
    }

    proptest::proptest! {
        #[test]
        fn exact_sizing_is_exact(
            hundredths in 1u32..=10_000,
            replicas in 1..500i32,
            surge in proptest::bool::ANY,
        ) {
            let percent = f64::from(hundredths) / 100.0;
            let mode = if surge { CanaryMode::Surge } else { CanaryMode::Replace };
            if let Some(exact) = exact_sizing(percent, replicas, mode) {
                // canary / (stable + canary) == hundredths / 10000, in integers.
                let total = i64::from(exact.stable_pods + exact.canary_pods);
                proptest::prop_assert_eq!(
                    i64::from(exact.canary_pods) * 10_000,
                    i64::from(hundredths) * total
                );
                proptest::prop_assert!(exact.canary_pods >= 1 && exact.stable_pods >= 1);
                let expected_stable =
                    stable_pods_beside_canary(mode, exact.replicas, exact.canary_pods);
                proptest::prop_assert_eq!(exact.stable_pods, expected_stable);
                // resolve_canary agrees: at that size the share is hit exactly.
                let resolved = resolve_canary(CanarySize::Percent(percent), exact.replicas, mode).unwrap();
                proptest::prop_assert_eq!(resolved.pods, exact.canary_pods);
            }
        }
    }

    fn explain_input(
        max_surge: &str,
        max_unavailable: &str,
        replicas: i32,
        canary: ResolvedCanary,
    ) -> ExplainInput {
        ExplainInput {
            deployment: Some("web".to_owned()),
            replicas,
            max_surge: max_surge.parse().unwrap(),
            max_unavailable: max_unavailable.parse().unwrap(),
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            containers: vec!["app".to_owned()],
            selector: Some("app=web".to_owned()),
            canary,
            brake_seconds: 1_000_000_000,
        }
    }

    #[test]
    fn explain_default_strategy_never_rests_at_one_canary() {
        let canary = resolve_canary(CanarySize::Pods(1), 10, CanaryMode::Surge).unwrap();
        let view = explain(&explain_input("25%", "25%", 10, canary)).unwrap();
        assert_eq!(
            view.fenceposts,
            Fenceposts {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        assert!(!view.native_rests_at_canary);
        assert_eq!(view.native[0].pause, PauseLanding::Race);
        assert_eq!((view.native[3].old_pods, view.native[3].new_pods), (8, 5));
        assert_eq!(view.native[3].pause, PauseLanding::Rests);
        assert_eq!(view.native.last().unwrap().pause, PauseLanding::Complete);
        assert!(
            view.summary[2].contains("never rests at 10 stable + 1 canary"),
            "{:?}",
            view.summary
        );
        let brake = &view.steps[1];
        assert_eq!(brake.states, [(10, 0), (10, 1)]);
        assert!(
            brake.kubectl[1].contains(r#""maxSurge":1,"maxUnavailable":0"#),
            "{}",
            brake.kubectl[1]
        );
        assert!(brake.kubectl[1].contains(r#"{"name":"app","image":"NEW_IMAGE"}"#));
        assert!(view.steps[3].kubectl[0] == "kubectl rollout pause deployment/web");
        assert!(view.steps[4].kubectl[0].contains(r#""maxSurge":"25%","maxUnavailable":"25%""#));
    }

    #[test]
    fn explain_one_surge_rests_at_one_canary() {
        let canary = resolve_canary(CanarySize::Pods(1), 3, CanaryMode::Surge).unwrap();
        let view = explain(&explain_input("1", "0", 3, canary)).unwrap();
        assert!(view.native_rests_at_canary);
        let at_canary: Vec<&NativeStep> =
            view.native.iter().filter(|s| s.is_wanted_canary).collect();
        assert_eq!(at_canary.len(), 1);
        assert_eq!((at_canary[0].old_pods, at_canary[0].new_pods), (3, 1));
        assert!((at_canary[0].new_share_percent - 25.0).abs() < 1e-9);
        let replace = resolve_canary(CanarySize::Pods(2), 10, CanaryMode::Replace).unwrap();
        let view = explain(&explain_input("25%", "25%", 10, replace)).unwrap();
        assert_eq!(view.steps[1].states, [(10, 0), (8, 0), (8, 2)]);
        assert!(view.steps[1].kubectl[1].contains(r#""maxSurge":0,"maxUnavailable":2"#));
    }

    #[test]
    fn explain_refuses_what_the_api_refuses() {
        let canary = resolve_canary(CanarySize::Pods(1), 3, CanaryMode::Surge).unwrap();
        assert!(matches!(
            explain(&explain_input("0", "0", 3, canary)),
            Err(PlanError::RolloutMath(
                RolloutMathError::InvalidStrategy { .. }
            ))
        ));
    }

    #[test]
    fn plan_serializes_with_camel_case_and_tags() {
        let plan = plan(&PlanInput {
            replicas: 10,
            target: "5%".parse().unwrap(),
            pod_requests: None,
            cluster: ClusterCapacity::Offline,
        })
        .unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["target"], "5%");
        assert_eq!(json["modes"][0]["mode"], "surge");
        assert_eq!(
            json["modes"][0]["options"][0]["capacity"]["status"],
            "notChecked"
        );
        assert_eq!(json["modes"][1]["exact"]["replicas"], 20);
        let verdict = CapacityVerdict::DoesNotFit {
            extra_pods: 2,
            fitting: 1,
        };
        assert_eq!(
            serde_json::to_value(&verdict).unwrap(),
            serde_json::json!({"status": "doesNotFit", "extraPods": 2, "fitting": 1})
        );
    }
}
