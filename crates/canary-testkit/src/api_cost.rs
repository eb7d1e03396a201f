//! Requests counted by the API server, per identity: a FlowSchema that matches only one
//! ServiceAccount, and the API server's `apiserver_flowcontrol_dispatched_requests_total`
//! for it (the count `bench/run`'s API table reads too). The client side cannot hide a
//! request from it: retries, watches and reconnects all pass API priority and fairness.

use std::time::Duration;

use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::TestEnv;

const DISPATCHED: &str = "apiserver_flowcontrol_dispatched_requests_total";

/// Counts the requests of one ServiceAccount; remove it with [`RequestCounter::remove`].
pub struct RequestCounter {
    client: kube::Client,
    flow_schema: String,
}

impl RequestCounter {
    /// A FlowSchema for ServiceAccount `account` of `namespace` (named after the namespace,
    /// exempt from queuing so that counting never slows it down), in effect once `probe`
    /// (a request made as that account) is counted under it.
    pub async fn create(
        env: &TestEnv,
        namespace: &str,
        account: &str,
        mut probe: impl AsyncFnMut(),
    ) -> Self {
        let client = env.client().await;
        let flow_schema = format!("kc-count-{namespace}");
        let schema: FlowSchema = serde_json::from_value(serde_json::json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": flow_schema},
            "spec": {
                "matchingPrecedence": 50,
                "priorityLevelConfiguration": {"name": "exempt"},
                "rules": [{
                    "subjects": [{"kind": "ServiceAccount",
                                  "serviceAccount": {"name": account, "namespace": namespace}}],
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                       "clusterScope": true, "namespaces": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }],
            },
        }))
        .expect("a FlowSchema");
        Api::<FlowSchema>::all(client.clone())
            .create(&PostParams::default(), &schema)
            .await
            .expect("create the counting FlowSchema");
        let counter = Self {
            client,
            flow_schema,
        };
        // The API server's flow-control configuration follows FlowSchemas within moments.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let before = counter.count().await;
            probe().await;
            if counter.count().await > before {
                return counter;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "FlowSchema {} never matched the account's requests",
                counter.flow_schema
            );
        }
    }

    /// The requests dispatched for the account so far.
    pub async fn count(&self) -> u64 {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .expect("a request");
        let text = self
            .client
            .request_text(request)
            .await
            .expect("the API server's metrics");
        let selector = format!("flow_schema=\"{}\"", self.flow_schema);
        text.lines()
            .filter(|line| line.starts_with(&format!("{DISPATCHED}{{")) && line.contains(&selector))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Deletes the FlowSchema.
    pub async fn remove(self) {
        let _ = Api::<FlowSchema>::all(self.client)
            .delete(&self.flow_schema, &DeleteParams::default())
            .await;
    }
}
