//! Kubernetes adapters of kubectl-canary.
