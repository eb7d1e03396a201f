//! Prometheus' HTTP API answers, parsed into series.

use super::client::kubernetes_status_message;
use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiResponse {
    status: String,
    data: Option<ApiData>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
pub(super) struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<(f64, String)>,
    values: Option<Vec<(f64, String)>>,
}

/// Parses a sample value as Prometheus writes it ("1.5", "NaN", "+Inf").
pub(super) fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Parses Prometheus' JSON answer into series (a scalar becomes one series without labels).
pub fn parse_response(
    address: &str,
    status: u16,
    body: &[u8],
) -> Result<Vec<Series>, PrometheusError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(PrometheusError::Decode {
            address: address.into(),
            reason: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    if !(200..300).contains(&status)
        && let Some(message) = kubernetes_status_message(body)
    {
        // The API server's service proxy refused (e.g. 403 without services/proxy) or could
        // not reach the Service: its Status message says why.
        return Err(PrometheusError::Status {
            address: address.into(),
            status,
            body: message,
        });
    }
    let decoded: Result<ApiResponse, _> = serde_json::from_slice(body);
    let response = match decoded {
        Ok(response) => response,
        Err(error) if (200..300).contains(&status) => {
            return Err(PrometheusError::Decode {
                address: address.into(),
                reason: error.to_string(),
            });
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string();
            return Err(PrometheusError::Status {
                address: address.into(),
                status,
                body: text,
            });
        }
    };
    if response.status != "success" {
        return Err(PrometheusError::Query {
            error_type: response.error_type.unwrap_or_else(|| "unknown".into()),
            error: response
                .error
                .unwrap_or_else(|| format!("status {}", response.status)),
        });
    }
    let decode_error = |reason: String| PrometheusError::Decode {
        address: address.into(),
        reason,
    };
    let data = response
        .data
        .ok_or_else(|| decode_error("no data in a successful answer".into()))?;
    let value_of = |text: &str| {
        parse_value(text).ok_or_else(|| decode_error(format!("{text:?} is not a sample value")))
    };
    match data.result_type.as_str() {
        "vector" | "matrix" => {
            let raw: Vec<RawSeries> =
                serde_json::from_value(data.result).map_err(|e| decode_error(e.to_string()))?;
            raw.into_iter()
                .map(|series| {
                    let pairs = series
                        .values
                        .unwrap_or_default()
                        .into_iter()
                        .chain(series.value);
                    let points = pairs
                        .map(|(time, text)| value_of(&text).map(|v| (time, v)))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Series {
                        labels: series.metric,
                        points,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (time, text): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| decode_error(e.to_string()))?;
            Ok(vec![Series {
                labels: BTreeMap::new(),
                points: vec![(time, value_of(&text)?)],
            }])
        }
        other => Err(decode_error(format!(
            "result type {other} cannot be compared"
        ))),
    }
}
