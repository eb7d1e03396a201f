//! Least privilege: every command works under exactly the documented Role
//! (deploy/cli-rbac/role.yaml), through an identity that has nothing else (a ServiceAccount
//! authenticated with `--token`); under the Role minus any verb a command checks, it ends
//! with exit code 6 naming that verb, and nothing changed.

mod common;

use std::time::Duration;

use canary_testkit::scenario::web_namespace;
use canary_testkit::{TestEnv, assert_spec_equal_except, spec_of, wait_settled};
use common::rbac::{documented_role, operator, set_rules};
use common::*;

const FORBIDDEN: i32 = 6;

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
    // nor the notification Secret's, needed only by --notify NAME, tests/notify.rs).
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
            })
        })
        .flat_map(|(i, r)| r.verbs.iter().map(move |v| (i, v.clone())))
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
