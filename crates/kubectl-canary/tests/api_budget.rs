//! API cost cannot creep back unnoticed: each command of the two canary lifecycles, run
//! under the documented Role as a ServiceAccount, is counted by the API server (a FlowSchema
//! of its own, `canary_testkit::api_cost`) and must stay within its budget plus a margin.
//!
//! The budgets are the counts measured when the "one view per command" work landed
//! (docs/results/bench.md, "API cost"; docs/ARCHITECTURE.md says what each request is
//! for); the margin covers what varies between runs on a healthy cluster: an update that
//! meets the Deployment controller's status write and is sent again (409, read again), and
//! a watch that reconnects.

mod common;

use canary_testkit::TestEnv;
use canary_testkit::api_cost::RequestCounter;
use canary_testkit::scenario::web_namespace;
use common::rbac::{SA, documented_role, operator};
use common::*;

/// Requests above a budget that still pass.
const MARGIN: u64 = 3;

/// One command of a lifecycle and the requests it may cost.
struct Step {
    args: &'static [&'static str],
    budget: u64,
}

/// The first two commands of both lifecycles.
const START: Step = Step {
    args: &["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"],
    budget: 16,
};
const STATUS: Step = Step {
    args: &["status", "deploy/web"],
    budget: 8,
};

/// The recipe of the handout costs 15 requests (promote) and 20 (abort) in bench/run.
const LIFECYCLES: &[(&str, &[Step])] = &[
    (
        "promote",
        &[
            START,
            STATUS,
            Step {
                args: &["promote", "deploy/web", "--full"],
                budget: 15,
            },
        ],
    ),
    (
        "abort",
        &[
            START,
            STATUS,
            Step {
                args: &["abort", "deploy/web"],
                budget: 15,
            },
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_stays_within_its_request_budget() {
    let Some(env) = TestEnv::get() else { return };
    let mut over = Vec::new();
    let mut counted = Vec::new();
    for (lifecycle, steps) in LIFECYCLES {
        let ns = web_namespace(&env, &format!("budget-{lifecycle}"), 10).await;
        let token = operator(&env, &ns.name, &documented_role()).await;
        let as_operator = async |args: &[&str]| {
            let mut full = vec!["--token", token.as_str()];
            full.extend_from_slice(args);
            canary(&env, &ns.name, &full).await
        };
        let counter = RequestCounter::create(&env, &ns.name, SA, async || {
            as_operator(&["status", "deploy/web"]).await;
        })
        .await;
        for step in *steps {
            let before = counter.count().await;
            let out = as_operator(step.args).await;
            let cost = counter.count().await - before;
            assert_exit(&out, 0, &step.args.join(" "));
            counted.push(format!("{lifecycle}: {} = {cost}", step.args.join(" ")));
            if cost > step.budget + MARGIN {
                over.push(format!(
                    "{lifecycle}: `{}` cost {cost} requests; its budget is {} (+{MARGIN})",
                    step.args.join(" "),
                    step.budget
                ));
            }
        }
        counter.remove().await;
    }
    assert!(
        over.is_empty(),
        "commands over their API budget:\n{}\n(all counted: {counted:#?})",
        over.join("\n")
    );
}
