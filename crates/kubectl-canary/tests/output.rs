//! Machine output: every command prints one result document with `-o json|yaml` (with
//! `apiVersion` and `kind`), progress goes to stderr in every output mode, and the values
//! scripts branch on are enumerated values (see docs/output.md).

mod common;

use canary_testkit::TestEnv;
use canary_testkit::scenario::web_namespace;
use common::{assert_exit, canary, text};

const VERSION: &str = "kubectl-canary.io/v1";

/// Parses stdout as exactly one JSON document.
fn json_document(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {}", text(out)))
}

#[tokio::test]
async fn abort_and_promote_full_print_their_result_and_progress_goes_to_stderr() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "output-docs", 3).await;
    let start = |output: &'static str| {
        let env = env.clone();
        let ns = ns.name.clone();
        async move {
            canary(
                &env,
                &ns,
                &[
                    "start",
                    "deploy/web",
                    "nginx=nginx:1.15",
                    "--canary",
                    "1",
                    "-o",
                    output,
                ],
            )
            .await
        }
    };

    let out = start("json").await;
    assert_exit(&out, 0, "start -o json");
    let status = json_document(&out);
    assert_eq!(status["apiVersion"], VERSION);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["phase"], "holding", "{status}");
    assert_eq!(status["phaseDescription"], "holding a canary of 1 pod(s)");
    // The progress lines went to stderr.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recorded in the cluster"),
        "{}",
        text(&out)
    );

    let out = canary(&env, &ns.name, &["abort", "deploy/web", "-o", "json"]).await;
    assert_exit(&out, 0, "abort -o json");
    let result = json_document(&out);
    assert_eq!(result["apiVersion"], VERSION);
    assert_eq!(result["kind"], "Result");
    assert_eq!(result["command"], "abort");
    assert_eq!(result["outcome"], "rolledBack");
    assert_eq!(result["deployment"], "web");
    assert_eq!(result["status"]["phase"], "none", "{result}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .starts_with("rolled back")
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).is_empty(),
        "progress on stderr"
    );

    let out = start("yaml").await;
    assert_exit(&out, 0, "start -o yaml");
    let out = canary(
        &env,
        &ns.name,
        &["promote", "deploy/web", "--full", "-o", "yaml"],
    )
    .await;
    assert_exit(&out, 0, "promote --full -o yaml");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.starts_with("---\n"), "a YAML document: {stdout}");
    let result: serde_json::Value = serde_saphyr::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one YAML document ({e}): {stdout}"));
    assert_eq!(result["kind"], "Result");
    assert_eq!(result["command"], "promote");
    assert_eq!(result["outcome"], "promoted", "{result}");

    // Nothing left: abort finishes nothing and says so as an error, not as a document.
    let out = canary(&env, &ns.name, &["status", "deploy/web", "-o", "json"]).await;
    let status = json_document(&out);
    assert_eq!(status["phase"], "none");
    assert!(status["waiting"].is_null());
}
