//! `kubectl canary report` end to end on the test environment: a canary started, analysed
//! twice and aborted; the report made afterwards, from what the cluster keeps, is one
//! self-contained HTML file that a real headless browser (Debian's chromium) loads without
//! a console message and whose screenshot shows the charts. A history edited by someone
//! who may only write ConfigMaps is shown escaped, never run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use canary_testkit::TestEnv;
use canary_testkit::scenario::web_namespace;
use common::{assert_exit, canary, start_release, text};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

const OK: i32 = 0;

/// The chart colours of the report (`output::report::chart`), as RGB.
const CANARY_RGB: [u8; 3] = [0xd6, 0x27, 0x28];
const STABLE_RGB: [u8; 3] = [0x1f, 0x77, 0xb4];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kc-report-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Debian's chromium: installed by scripts/ensure-test-tools (scripts/test runs it).
fn chromium() -> &'static str {
    "chromium"
}

fn chromium_args(dir: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--hide-scrollbars".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", dir.join("profile").display()),
    ]
}

/// Loads `page` in headless chromium; returns the console messages it logged (every
/// console call and every Content-Security-Policy violation is one).
fn console_messages(page: &Path) -> Vec<String> {
    let dir = page.parent().unwrap();
    let output = Command::new(chromium())
        .args(chromium_args(dir))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (scripts/ensure-test-tools installs it)");
    assert!(
        output.status.success(),
        "chromium --dump-dom failed: {output:?}"
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(dom.contains("<body"), "the browser loaded the page: {dom}");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// A screenshot of `page` (1280 pixels wide), decoded: width, height, RGBA pixels.
fn screenshot(page: &Path) -> (u32, u32, Vec<u8>) {
    let dir = page.parent().unwrap();
    let png_path = dir.join("screenshot.png");
    let output = Command::new(chromium())
        .args(chromium_args(dir))
        .args(["--window-size=1280,1600"])
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium --screenshot failed: {output:?}"
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).expect("the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    let rgba: Vec<u8> = pixels[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    (info.width, info.height, rgba)
}

/// Pixels of the screenshot close to `rgb`.
fn pixels_of(rgba: &[u8], rgb: [u8; 3]) -> usize {
    rgba.chunks(4)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 12))
        .count()
}

#[tokio::test]
async fn a_report_made_after_the_canary_shows_its_verdicts_charts_and_commands() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "report", 3).await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"];
    assert_exit(&canary(&env, &ns.name, &start).await, OK, "start");
    for round in 0..2 {
        let out = canary(
            &env,
            &ns.name,
            &["analyze", "deploy/web", "--log-errors", "--wait"],
        )
        .await;
        assert_exit(&out, OK, &format!("analysis round {round}"));
    }
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        OK,
        "abort",
    );

    // After the fact: the record is gone, the history and the Events are what is left.
    let dir = scratch("after");
    let page = dir.join("report.html");
    let out = canary(
        &env,
        &ns.name,
        &["report", "deploy/web", "--out", page.to_str().unwrap()],
    )
    .await;
    assert_exit(&out, OK, "report");
    let html = std::fs::read_to_string(&page).expect("the report");
    for expected in [
        "<span class=\"verdict pass\" id=\"verdict\">PASS</span>",
        "Latest of 2 analysis round(s)",
        "pod-health: pods Ready",
        "log-errors:",
        "traffic share: % of Ready pods",
        &format!(
            "kubectl canary -n {} start deploy/web nginx=nginx:1.15 --canary 1",
            ns.name
        ),
        &format!("kubectl canary -n {} abort deploy/web", ns.name),
        "AnalysisPassed",
        "<td>Available</td><td>True</td>",
        "these may have been altered",
        "web.kubectl-canary-history",
    ] {
        assert!(
            html.contains(expected),
            "the report lacks {expected:?}:\n{html}"
        );
    }
    // Every chart: the traffic share and one per measurement of each check.
    assert!(html.matches("<svg class=\"chart\"").count() >= 4, "{html}");
    assert!(!html.contains("<script"), "no script in the report");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "no external resource: the only URLs are the SVG namespace"
    );

    let console = console_messages(&page);
    assert!(console.is_empty(), "console messages: {console:#?}");
    let (width, height, rgba) = screenshot(&page);
    assert!(width >= 1280 && height >= 1000, "{width}x{height}");
    let canary_pixels = pixels_of(&rgba, CANARY_RGB);
    let stable_pixels = pixels_of(&rgba, STABLE_RGB);
    assert!(
        canary_pixels > 1500 && stable_pixels > 1500,
        "the screenshot shows the charts' lines: {canary_pixels} canary, {stable_pixels} stable pixels"
    );
    // The browser's profile goes; the report and its screenshot stay for a person to see.
    std::fs::remove_dir_all(dir.join("profile")).ok();
}

#[tokio::test]
async fn an_edited_history_is_shown_escaped_and_never_runs() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "report-hostile", 2).await;
    let start = ["start", "deploy/web", "nginx=nginx:1.15", "--canary", "1"];
    assert_exit(&canary(&env, &ns.name, &start).await, OK, "start");
    let out = canary(&env, &ns.name, &["analyze", "deploy/web", "--wait"]).await;
    assert_exit(&out, OK, "analyze");

    // Someone who may write ConfigMaps (the admin stands in) puts markup into the history.
    let admin: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    let history = admin
        .get("web.kubectl-canary-history")
        .await
        .expect("the history");
    let text_of = history.data.unwrap()["history.json"].clone();
    let hostile = r#"<script>console.error('ran')</script><img src=x onerror=console.error(1)>"#;
    let edited = text_of.replacen(
        "\"reason\":\"",
        &format!("\"reason\":\"{}", hostile.replace('"', "\\\"")),
        1,
    );
    assert_ne!(edited, text_of);
    let patch = serde_json::json!({"data": {"history.json": edited}});
    let patched = admin
        .patch(
            "web.kubectl-canary-history",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("edit the history");
    assert!(patched.data.unwrap()["history.json"].contains("<script>"));

    let dir = scratch("hostile");
    let page = dir.join("report.html");
    let out = canary(
        &env,
        &ns.name,
        &["report", "deploy/web", "--out", page.to_str().unwrap()],
    )
    .await;
    assert_exit(&out, OK, &format!("report\n{}", text(&out)));
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;console.error("),
        "shown as text"
    );
    let console = console_messages(&page);
    assert!(
        console.is_empty(),
        "nothing ran, nothing was blocked: {console:#?}"
    );
    std::fs::remove_dir_all(dir.join("profile")).ok();
    assert_exit(
        &canary(&env, &ns.name, &["abort", "deploy/web"]).await,
        OK,
        "abort",
    );
}

/// The console check can fail: a page that logs is caught (so an empty list above means
/// the browser ran the report and logged nothing, not that logging is not read).
#[test]
fn the_console_check_sees_a_page_that_logs() {
    let dir = scratch("probe");
    let page = dir.join("probe.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><svg></svg><script>console.error('probe')</script></body></html>",
    )
    .unwrap();
    let console = console_messages(&page);
    assert!(console.iter().any(|l| l.contains("probe")), "{console:#?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn start_auto_writes_the_report_of_its_steps_at_the_end() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "report-auto", 4).await;
    let dir = scratch(&format!("auto-{}", ns.name));
    let page = dir.join("auto.html");
    let out = start_release(
        &env,
        &ns.name,
        &[
            "--auto",
            "--steps",
            "1,2",
            "--interval",
            "3s",
            "--http-check",
            ":80/",
            "--http-requests",
            "20",
            "--http-rate",
            "20",
            "--report",
            page.to_str().unwrap(),
        ],
    )
    .await;
    assert_exit(&out, OK, "start --auto");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrote the report of deploy/web"),
        "{}",
        text(&out)
    );
    let html = std::fs::read_to_string(&page).expect("the report of start --auto");
    assert!(html.contains("Latest of 2 analysis round(s)"), "{html}");
    assert!(html.contains("http-80:"), "{html}");
    assert!(
        html.contains("--auto --steps 1,2 --interval 3s"),
        "the command itself, noted before the report was written: {html}"
    );
    assert!(html.contains("<td>0</td>"), "its exit code: {html}");
}

#[tokio::test]
async fn refused_commands_and_dry_runs_write_no_history() {
    let Some(env) = TestEnv::get() else { return };
    let ns = web_namespace(&env, "report-nothing", 2).await;
    let dry = [
        "start",
        "deploy/web",
        "nginx=nginx:1.15",
        "--canary",
        "1",
        "--dry-run",
    ];
    assert_exit(&canary(&env, &ns.name, &dry).await, OK, "start --dry-run");
    let same_image = ["start", "deploy/web", "nginx=nginx:1.14", "--canary", "1"];
    let out = canary(&env, &ns.name, &same_image).await;
    assert_exit(&out, 4, "start with the image it runs");
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client().await, &ns.name);
    assert!(
        configmaps
            .get_opt("web.kubectl-canary-history")
            .await
            .expect("read")
            .is_none(),
        "a dry run and a refused start change nothing, no history either"
    );
    // The report of a Deployment without any canary says so, and still loads.
    let dir = scratch(&format!("nothing-{}", ns.name));
    let page = dir.join("report.html");
    let out = canary(
        &env,
        &ns.name,
        &["report", "deploy/web", "--out", page.to_str().unwrap()],
    )
    .await;
    assert_exit(&out, OK, "report without a canary");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("NO ANALYSIS"), "{html}");
    assert!(
        html.contains("no ConfigMap <code>web.kubectl-canary-history</code> exists"),
        "{html}"
    );
}
