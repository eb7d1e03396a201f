//! The operations layer: what `start`, `promote`, `abort` (with its recovery) decide before
//! and around the engine's drive, as typed outcomes a binary renders. A binary parses,
//! resolves its config once, calls an operation and prints what came back; it does not
//! choose among cases, resize rules or Service switches itself.
//!
//! - [`abort`]: which of abort's cases a canary state is ([`abort::AbortCase`]);
//! - [`promote`]: which of promote's cases, and the size rules of `--canary`;
//! - [`start`]: what an interrupted or failed start leaves (records, Service pins);
//! - [`step`]: one turn of a recorded canary towards a goal, and what follows an analysis
//!   (the CLI's drive loops and the controller's reconcile alike);
//! - [`switch`]: Blue/Green's switch of every Service to one set;
//! - [`next`]: the next change towards a goal, as a dry run shows it;
//! - [`kinds`]: a StatefulSet's or DaemonSet's start (its template and nodes), promote (which
//!   only grows) and abort.

pub mod abort;
pub mod kinds;
pub mod next;
pub mod promote;
pub mod start;
pub mod step;
pub mod switch;
