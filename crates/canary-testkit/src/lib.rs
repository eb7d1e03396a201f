//! Test helpers for kubectl-canary integration tests.
