//! Least privilege: every command works under exactly the documented Role
//! (deploy/cli-rbac/role.yaml), through an identity that has nothing else (a ServiceAccount
//! authenticated with `--token`); under the Role minus any verb a command checks, it ends
//! with exit code 6 naming that verb, and nothing changed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use canary_testkit::kinds::{
    SimNodes, create_settled_daemonset, create_settled_statefulset, daemonset, statefulset,
    workload_state,
};
use canary_testkit::scenario::web_namespace;
use canary_testkit::{
    TestEnv, TestNamespace, assert_spec_equal_except, differences, spec_of, wait_settled,
};
use common::rbac::{
    bind_cluster_role, documented_cluster_role, documented_role, operator, set_rules,
    unbind_cluster_role,
};
use common::*;
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::Api;
use serde::de::DeserializeOwned;

const FORBIDDEN: i32 = 6;

/// Whether a rule is about pods.
fn is_pods(rule: &PolicyRule) -> bool {
    rule.resources.iter().flatten().any(|r| r == "pods")
}

async fn as_operator(env: &TestEnv, ns: &str, token: &str, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--token", token];
    full.extend_from_slice(args);
    canary(env, ns, &full).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_under_exactly_the_documented_role() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "rbac", 3).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let token = operator(&env, &ns.name, &documented_role()).await;
    let run = |args: &'static [&'static str]| {
        let (env, ns, token) = (env.clone(), ns.name.clone(), token.clone());
        async move { as_operator(&env, &ns, &token, args).await }
    };
    let whoami = run(&[
        "start",
        "deploy/web",
        "nginx=nginx:1.15",
        "--canary",
        "1",
        "--dry-run",
    ])
    .await;
    assert_exit(&whoami, 0, "start --dry-run under the Role");
    assert_exit(
        &run(&["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"]).await,
        0,
        "start",
    );
    assert_exit(&run(&["status", "deploy/web"]).await, 0, "status");
    assert_exit(
        &run(&["promote", "deploy/web", "--canary", "2"]).await,
        0,
        "promote --canary 2",
    );
    assert_exit(&run(&["abort", "deploy/web"]).await, 0, "abort");
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
    assert_exit(
        &run(&["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"]).await,
        0,
        "start again",
    );
    assert_exit(
        &run(&["promote", "deploy/web", "--full"]).await,
        0,
        "promote --full",
    );
    assert!(
        !record_exists(&env, &ns.name, "web").await,
        "promote --full removes the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_verb_is_named_with_exit_6_and_nothing_changes() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "rbacminus", 3).await;
    let original = spec_of(&env, &ns.name, "web").await;
    let role = documented_role();
    let token = operator(&env, &ns.name, &role).await;
    let full_rules = role.rules.clone().unwrap();
    // Every verb start checks before its first change (the optional Events and pods/log
    // rules are not checked: without them the tool works; nor the Services and
    // EndpointSlices rules, needed only by --dark/--sticky/--blue-green, tests/traffic.rs;
    // nor the notification Secret's, needed only by --notify NAME, tests/notify.rs; nor the
    // StatefulSets' and DaemonSets' own, below).
    let checked: Vec<(usize, String)> = full_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            !r.resources.iter().flatten().any(|res| {
                res == "events"
                    || res == "pods/log"
                    || res == "services"
                    || res == "endpointslices"
                    || res == "secrets"
                    || res == "statefulsets"
                    || res == "daemonsets"
                    || res == "controllerrevisions"
            })
        })
        .flat_map(|(i, r)| r.verbs.iter().map(move |v| (i, v.clone())))
        .filter(|(i, verb)| !(is_pods(&full_rules[*i]) && verb == "delete"))
        .collect();
    assert!(checked.len() >= 15, "{checked:?}");
    for (index, verb) in checked {
        let mut rules = full_rules.clone();
        rules[index].verbs.retain(|v| *v != verb);
        let resource = rules[index].resources.clone().unwrap_or_default().join(",");
        set_rules(&env, &ns.name, rules).await;
        let out = as_operator(
            &env,
            &ns.name,
            &token,
            &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"],
        )
        .await;
        let what = format!("start without {verb} {resource}");
        assert_exit(&out, FORBIDDEN, &what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("may not {verb} {resource}")),
            "{what}: names the verb: {}",
            text(&out)
        );
        assert!(
            !record_exists(&env, &ns.name, "web").await,
            "{what}: no record"
        );
        assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
    }
    // promote and abort check their verbs too: with a held canary, take update
    // deployments away and both refuse with nothing changed.
    set_rules(&env, &ns.name, full_rules.clone()).await;
    assert_exit(
        &as_operator(
            &env,
            &ns.name,
            &token,
            &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"],
        )
        .await,
        0,
        "start under the full Role",
    );
    let held = spec_of(&env, &ns.name, "web").await;
    for (resource, verb) in [
        ("deployments", "update"),
        ("configmaps", "update"),
        ("configmaps", "delete"),
    ] {
        let mut rules = full_rules.clone();
        for rule in &mut rules {
            if rule.resources.iter().flatten().any(|r| r == resource) {
                rule.verbs.retain(|v| v != verb);
            }
        }
        set_rules(&env, &ns.name, rules).await;
        for command in [
            &["promote", "deploy/web", "--full"][..],
            &["abort", "deploy/web"][..],
        ] {
            let out = as_operator(&env, &ns.name, &token, command).await;
            let what = format!("{} without {verb} {resource}", command[0]);
            assert_exit(&out, FORBIDDEN, &what);
            assert!(
                String::from_utf8_lossy(&out.stderr)
                    .contains(&format!("may not {verb} {resource}")),
                "{what}: {}",
                text(&out)
            );
            assert_spec_equal_except(&held, &spec_of(&env, &ns.name, "web").await, &[]);
            assert!(
                record_exists(&env, &ns.name, "web").await,
                "{what}: record kept"
            );
        }
    }
    set_rules(&env, &ns.name, full_rules).await;
    assert_exit(
        &as_operator(&env, &ns.name, &token, &["abort", "deploy/web"]).await,
        0,
        "abort",
    );
    wait_settled(&env, &ns.name, "web", Duration::from_secs(60)).await;
    assert_spec_equal_except(&original, &spec_of(&env, &ns.name, "web").await, &[]);
}

/// `(verb, resource)` pairs.
type Checks = &'static [(&'static str, &'static str)];

/// What each command on a StatefulSet or DaemonSet checks before it reads or changes
/// anything, as docs/permissions.md lists it: `(verb, resource)`, `W` standing for the
/// workload's own resource (statefulsets, daemonsets). Every command but status and
/// promote --full may delete pods (a DaemonSet's OnDelete canary, a StatefulSet's forced
/// rollback); `--nodes` is checked apart (cluster-wide).
const KIND_CHECKS: [(&str, &[Checks]); 5] = [
    ("status", &[READS]),
    ("start", &[READS, CHANGES, DELETE_PODS]),
    ("promote --canary", &[READS, CHANGES, DELETE_PODS]),
    ("promote --full", &[READS, CHANGES]),
    ("abort", &[READS, CHANGES, DELETE_PODS]),
];
/// Reading the workload with its revisions and pods.
const READS: Checks = &[
    ("get", "W"),
    ("list", "controllerrevisions"),
    ("list", "pods"),
];
/// Changing it: the watches of the workload and its pods while the controller works, the
/// update.
const CHANGES: Checks = &[
    ("list", "W"),
    ("watch", "W"),
    ("update", "W"),
    ("watch", "pods"),
];
/// Deleting pods (guarded; never their volumes).
const DELETE_PODS: Checks = &[("delete", "pods")];

/// A StatefulSet or DaemonSet under test and its commands.
struct KindCase {
    /// `sts/db`, `ds/agent`.
    workload: &'static str,
    /// Its resource (`W` in [`KIND_CHECKS`]).
    resource: &'static str,
    /// The release of `start`.
    image: &'static str,
}

impl KindCase {
    /// The command line of a command of [`KIND_CHECKS`].
    fn args(&self, command: &str) -> Vec<&'static str> {
        match command {
            "status" => vec!["status", self.workload],
            "start" => vec!["start", self.workload, self.image, "--canary", "1"],
            "promote --canary" => vec!["promote", self.workload, "--canary", "2"],
            "promote --full" => vec!["promote", self.workload, "--full"],
            _ => vec!["abort", self.workload],
        }
    }

    /// What a command of [`KIND_CHECKS`] checks, `W` resolved.
    fn checks(&self, checks: &[Checks]) -> Vec<(&'static str, &'static str)> {
        checks
            .iter()
            .flat_map(|c| c.iter())
            .map(|&(verb, resource)| {
                (
                    verb,
                    if resource == "W" {
                        self.resource
                    } else {
                        resource
                    },
                )
            })
            .collect()
    }

    /// The name of the workload.
    fn name(&self) -> &'static str {
        self.workload.split_once('/').unwrap().1
    }
}

/// The rules with `verb` taken off `resource` (off every rule that grants it).
fn without(rules: &[PolicyRule], verb: &str, resource: &str) -> Vec<PolicyRule> {
    let mut rules = rules.to_vec();
    for rule in &mut rules {
        if rule.resources.iter().flatten().any(|r| r == resource) {
            rule.verbs.retain(|v| v != verb);
        }
    }
    rules
}

/// The verbs the documented Role grants on the kind's resources (the workload's, its
/// revisions', its pods').
fn role_grants(case: &KindCase) -> BTreeSet<(String, String)> {
    documented_role()
        .rules
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let resources = rule.resources.clone().unwrap_or_default();
            resources.into_iter().flat_map(move |resource| {
                rule.verbs
                    .iter()
                    .map(move |verb| (verb.clone(), resource.clone()))
            })
        })
        .filter(|(_, resource)| {
            [case.resource, "controllerrevisions", "pods"].contains(&resource.as_str())
        })
        .collect()
}

/// Under the documented Role minus each verb a command of the kind checks, in turn: exit 6
/// naming the verb, and the workload's spec and annotations (its record among them) as they
/// were. Status and start on the settled workload, promote and abort on a held canary.
async fn each_missing_verb_is_named<K>(
    env: &TestEnv,
    ns: &str,
    token: &str,
    api: &Api<K>,
    case: &KindCase,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
    K::DynamicType: Default,
{
    // The Role grants exactly what the commands check, on these resources: no verb more.
    let checked: BTreeSet<(String, String)> = KIND_CHECKS
        .iter()
        .flat_map(|(_, checks)| case.checks(checks))
        .map(|(verb, resource)| (verb.to_owned(), resource.to_owned()))
        .collect();
    assert_eq!(role_grants(case), checked, "{}", case.workload);
    let full_rules = documented_role().rules.unwrap();
    let before = workload_state(api, case.name()).await;
    let mut expected = before.clone();
    for (command, checks) in KIND_CHECKS {
        if command == "promote --canary" {
            // promote and abort need a canary: held under the whole Role.
            set_rules(env, ns, full_rules.clone()).await;
            let out = as_operator(env, ns, token, &case.args("start")).await;
            assert_exit(&out, 0, &format!("start {} under the Role", case.workload));
            expected = workload_state(api, case.name()).await;
            assert_ne!(expected, before, "the canary is recorded on the workload");
        }
        for (verb, resource) in case.checks(checks) {
            set_rules(env, ns, without(&full_rules, verb, resource)).await;
            let out = as_operator(env, ns, token, &case.args(command)).await;
            let what = format!("{command} {} without {verb} {resource}", case.workload);
            assert_exit(&out, FORBIDDEN, &what);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("may not {verb} {resource}"))
                    && stderr.contains("nothing was changed"),
                "{what}: names the verb: {}",
                text(&out)
            );
            assert_eq!(
                differences(&expected, &workload_state(api, case.name()).await),
                Vec::<String>::new(),
                "{what}"
            );
        }
    }
    set_rules(env, ns, full_rules).await;
    let out = as_operator(env, ns, token, &case.args("abort")).await;
    assert_exit(&out, 0, &format!("abort {} under the Role", case.workload));
    assert_eq!(
        differences(&before, &workload_state(api, case.name()).await),
        Vec::<String>::new(),
        "{} after the abort",
        case.workload
    );
}

const STATEFULSET: KindCase = KindCase {
    workload: "sts/db",
    resource: "statefulsets",
    image: "db=db:v2",
};

const DAEMONSET: KindCase = KindCase {
    workload: "ds/agent",
    resource: "daemonsets",
    image: "agent=agent:v2",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_canary_works_under_exactly_the_documented_role() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "rbac-sts").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", false),
    )
    .await;
    let before = workload_state(&api, "db").await;
    let token = operator(&env, ns, &documented_role()).await;
    let run = async |args: &[&str]| as_operator(&env, ns, &token, args).await;
    // A never-ready canary: abort's forced rollback deletes its pod (delete pods).
    let start = run(&["start", "sts/db", "db=db:v2__never-ready", "--canary", "1"]).await;
    assert_exit(&start, 0, "start a never-ready canary");
    assert_exit(&run(&["status", "sts/db"]).await, 0, "status");
    let abort = run(&["abort", "sts/db"]).await;
    assert_exit(&abort, 0, "abort");
    assert!(text(&abort).contains("forced rollback"), "{}", text(&abort));
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        Vec::<String>::new()
    );
    // The reads alone: a dry run, and an analysis of the held canary.
    let mut dry = STATEFULSET.args("start");
    dry.push("--dry-run");
    assert_exit(&run(&dry).await, 0, "start --dry-run");
    assert_exit(&run(&STATEFULSET.args("start")).await, 0, "start");
    // The analysis runs under the Role: pod health passes; the log check may still wait
    // for a canary pod seconds old to have logged (exit 12), which is not a permission's doing.
    let analyze = run(&["analyze", "sts/db", "-o", "json"]).await;
    assert!(
        matches!(analyze.status.code(), Some(0 | 12)),
        "analyze: {}",
        text(&analyze)
    );
    let verdict: serde_json::Value = serde_json::from_slice(&analyze.stdout).expect("a verdict");
    assert_eq!(verdict["checks"][0]["name"], "pod-health", "{verdict}");
    assert_eq!(verdict["checks"][0]["outcome"], "pass", "{verdict}");
    assert_exit(
        &run(&STATEFULSET.args("promote --canary")).await,
        0,
        "promote --canary 2",
    );
    assert_exit(
        &run(&STATEFULSET.args("promote --full")).await,
        0,
        "promote --full",
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "db").await),
        [".spec.template.spec.containers[0].image: \"db:v1\" -> \"db:v2\""]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_canary_works_under_exactly_the_documented_roles() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "rbac-ds").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 3).await;
    let before = workload_state(&api, "agent").await;
    let token = operator(&env, ns, &documented_role()).await;
    // --nodes lists the nodes: the documented ClusterRole for it, bound cluster-wide.
    let nodes_role = documented_cluster_role("kubectl-canary-nodes");
    let bound = bind_cluster_role(&env, ns, &nodes_role).await;
    let run = async |args: &[&str]| as_operator(&env, ns, &token, args).await;
    let pool = format!("{}={ns}", SimNodes::POOL_LABEL);
    let start = [
        "start",
        "ds/agent",
        "agent=agent:v2",
        "--canary",
        "1",
        "--nodes",
        &pool,
    ];
    assert_exit(&run(&start).await, 0, "start --nodes");
    assert_exit(&run(&["status", "ds/agent"]).await, 0, "status");
    assert_exit(
        &run(&DAEMONSET.args("promote --canary")).await,
        0,
        "promote --canary 2",
    );
    assert_exit(&run(&DAEMONSET.args("abort")).await, 0, "abort");
    assert_eq!(
        differences(&before, &workload_state(&api, "agent").await),
        Vec::<String>::new()
    );
    assert_exit(&run(&DAEMONSET.args("start")).await, 0, "start");
    assert_exit(
        &run(&DAEMONSET.args("promote --full")).await,
        0,
        "promote --full",
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "agent").await),
        [".spec.template.spec.containers[0].image: \"agent:v1\" -> \"agent:v2\""]
    );
    unbind_cluster_role(&env, &bound).await;
    nodes.remove_with(&env, &client, "agent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_command_without_a_verb_it_checks_ends_with_exit_6_and_changes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "rbac-sts-minus").await;
    let ns = namespace.name.as_str();
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    create_settled_statefulset(
        &env,
        &client,
        ns,
        &statefulset("db", 3, "db:v1", "OrderedReady", false),
    )
    .await;
    let token = operator(&env, ns, &documented_role()).await;
    each_missing_verb_is_named(&env, ns, &token, &api, &STATEFULSET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_command_without_a_verb_it_checks_ends_with_exit_6_and_changes_nothing() {
    let Some(env) = TestEnv::get() else { return };
    let client = env.client().await;
    let namespace = TestNamespace::create(&env, "rbac-ds-minus").await;
    let ns = namespace.name.as_str();
    let mut nodes = SimNodes::new(ns);
    nodes.add(&env, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    create_settled_daemonset(&env, &client, ns, &daemonset("agent", ns, "agent:v1"), 3).await;
    // --nodes without the ClusterRole that lists nodes: refused before anything, by name.
    let token = operator(&env, ns, &documented_role()).await;
    let before = workload_state(&api, "agent").await;
    let pool = format!("{}={ns}", SimNodes::POOL_LABEL);
    let start = [
        "start",
        "ds/agent",
        "agent=agent:v2",
        "--canary",
        "1",
        "--nodes",
        &pool,
    ];
    let out = as_operator(&env, ns, &token, &start).await;
    assert_exit(&out, FORBIDDEN, "start --nodes without list nodes");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not list nodes cluster-wide"),
        "{}",
        text(&out)
    );
    assert_eq!(
        differences(&before, &workload_state(&api, "agent").await),
        Vec::<String>::new()
    );
    each_missing_verb_is_named(&env, ns, &token, &api, &DAEMONSET).await;
    nodes.remove_with(&env, &client, "agent").await;
}
