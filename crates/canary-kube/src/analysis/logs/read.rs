//! Reading one pod's log over the window, at most a byte cap of it: the newest part when the
//! log is larger, with the time that part covers (every line read with the kubelet's
//! timestamp).

use std::time::Duration;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::LogParams;
use regex::Regex;

use canary_core::verdict::logs::LineCounter;

/// What was read of one pod's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LogRead {
    /// Its lines counted.
    pub(super) counter: LineCounter,
    /// The first and last line's timestamps (Unix seconds).
    pub(super) first_line: Option<i64>,
    pub(super) last_line: Option<i64>,
    /// Whether the log over the window was larger than the cap, so only its newest part was
    /// read.
    pub(super) truncated: bool,
}

/// Reads the log of `pod` over the last `window`, at most `cap` bytes of it. A log within the
/// cap is read whole; a larger one is read again as its newest lines (as many as fitted in
/// the cap), so the judgement is about the newest part, never the oldest.
pub(super) async fn read_newest(
    api: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    window: Duration,
    cap: i64,
    patterns: &[Regex],
) -> Result<LogRead, String> {
    let params = LogParams {
        container: container.map(str::to_string),
        since_seconds: Some(window.as_secs().max(1) as i64),
        limit_bytes: Some(cap),
        timestamps: true,
        ..LogParams::default()
    };
    let (whole, bytes) = read_counted(api, pod, &params, patterns).await?;
    if bytes < cap as u64 {
        return Ok(whole);
    }
    // Cut at the cap: the newest lines instead, as many as the cap held (the kubelet cuts a
    // tail at the cap too, keeping its older end, so the span ends at the last line read).
    let newest = LogParams {
        tail_lines: Some(whole.counter.lines.max(1) as i64),
        ..params
    };
    let (mut read, _) = read_counted(api, pod, &newest, patterns).await?;
    read.truncated = true;
    Ok(read)
}

/// Streams a log and counts its lines, so memory stays at one line whatever its size;
/// returns the count and the bytes read.
async fn read_counted(
    api: &Api<Pod>,
    pod: &str,
    params: &LogParams,
    patterns: &[Regex],
) -> Result<(LogRead, u64), String> {
    let reader = api
        .log_stream(pod, params)
        .await
        .map_err(|e| e.to_string())?;
    futures::pin_mut!(reader);
    let mut read = LogRead::default();
    let mut bytes = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading the log: {e}"))?;
        if n == 0 {
            return Ok((read, bytes));
        }
        bytes += n as u64;
        // Logs are not always UTF-8; a replaced byte does not hide an error word.
        let text = String::from_utf8_lossy(&line);
        let (when, message) = split_timestamp(text.trim_end());
        if let Some(when) = when {
            read.first_line.get_or_insert(when);
            read.last_line = Some(when);
        }
        read.counter.add(message, patterns);
    }
}

/// Splits the kubelet's `timestamps=true` prefix (`2026-11-30T22:18:29.123456789Z `) off a
/// line: (Unix seconds, the line as the container wrote it).
pub(super) fn split_timestamp(line: &str) -> (Option<i64>, &str) {
    match line.split_once(' ') {
        Some((stamp, rest)) => match stamp.parse::<Timestamp>() {
            Ok(when) => (Some(when.as_second()), rest),
            Err(_) => (None, line),
        },
        None => match line.parse::<Timestamp>() {
            // An empty line with its timestamp.
            Ok(when) => (Some(when.as_second()), ""),
            Err(_) => (None, line),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_kubelet_timestamp_off() {
        let (when, text) = split_timestamp("2026-11-30T22:18:29.123456789Z [error] boom");
        assert_eq!(
            when,
            Some(
                "2026-11-30T22:18:29Z"
                    .parse::<Timestamp>()
                    .unwrap()
                    .as_second()
            )
        );
        assert_eq!(text, "[error] boom");
        assert_eq!(split_timestamp("no stamp here"), (None, "no stamp here"));
    }
}
