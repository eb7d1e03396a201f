//! `kubectl canary`: exact, safe canary releases of plain Deployments.
fn main() {}
