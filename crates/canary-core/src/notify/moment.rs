//! The moments of a canary that are worth telling people, who tells them, and what each
//! moment asks of them next.

use serde::Serialize;

/// A moment of a canary that a notice tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moment {
    /// The canary was recorded and its first pods are being created.
    Started,
    /// The canary is held at its size.
    Held,
    /// An analysis passed.
    AnalysisPassed,
    /// An analysis failed.
    AnalysisFailed,
    /// An analysis could not decide.
    AnalysisInconclusive,
    /// The canary grows to its next size.
    StepPromoted,
    /// The new version runs on every pod; the canary is over.
    Promoted,
    /// Back to the stable version (or, under GitOps, resting on the stable pods).
    RolledBack,
    /// The canary cannot go on without a person.
    Stuck,
    /// Someone else changed the Deployment during the canary.
    ForeignChange,
    /// The canary waits for a person's approval (sent by the approval gates).
    AwaitingApproval {
        /// What is awaited and from whom, in the caller's words; it is also the next step,
        /// e.g. "`kubectl canary promote deploy/web --full` by someone allowed to update it".
        awaiting: String,
    },
}

/// How bad a moment is, for the colour of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Progress.
    Info,
    /// Done well.
    Good,
    /// Needs a look.
    Warning,
    /// Went wrong.
    Bad,
}

impl Moment {
    /// The moment's stable name, as the webhook document has it (`analysisFailed`).
    pub fn code(&self) -> &'static str {
        match self {
            Moment::Started => "started",
            Moment::Held => "held",
            Moment::AnalysisPassed => "analysisPassed",
            Moment::AnalysisFailed => "analysisFailed",
            Moment::AnalysisInconclusive => "analysisInconclusive",
            Moment::StepPromoted => "stepPromoted",
            Moment::Promoted => "promoted",
            Moment::RolledBack => "rolledBack",
            Moment::Stuck => "stuck",
            Moment::ForeignChange => "foreignChange",
            Moment::AwaitingApproval { .. } => "awaitingApproval",
        }
    }

    /// The moment in a few words, for a message's title.
    pub fn headline(&self) -> &'static str {
        match self {
            Moment::Started => "canary started",
            Moment::Held => "canary held",
            Moment::AnalysisPassed => "analysis passed",
            Moment::AnalysisFailed => "analysis failed",
            Moment::AnalysisInconclusive => "analysis inconclusive",
            Moment::StepPromoted => "canary growing to its next step",
            Moment::Promoted => "promoted to every pod",
            Moment::RolledBack => "rolled back to the stable version",
            Moment::Stuck => "canary stuck",
            Moment::ForeignChange => "changed by someone else",
            Moment::AwaitingApproval { .. } => "awaiting approval",
        }
    }

    /// How bad the moment is.
    pub fn severity(&self) -> Severity {
        match self {
            Moment::Started | Moment::Held | Moment::StepPromoted => Severity::Info,
            Moment::AnalysisPassed | Moment::Promoted => Severity::Good,
            Moment::AnalysisInconclusive
            | Moment::ForeignChange
            | Moment::AwaitingApproval { .. } => Severity::Warning,
            Moment::AnalysisFailed | Moment::RolledBack | Moment::Stuck => Severity::Bad,
        }
    }

    /// What a person may do next, as text with the commands: it differs between a canary
    /// of the CLI (by hand or `--auto`) and one of the GitOps controller, where Git decides.
    pub fn next_step(&self, sender: Sender, namespace: &str, deployment: &str) -> String {
        let target = format!("deploy/{deployment} -n {namespace}");
        let status = format!("kubectl canary status {target}");
        match (self, sender) {
            (Moment::AwaitingApproval { awaiting }, _) => awaiting.clone(),
            (Moment::Started | Moment::StepPromoted, _) => format!("watch it: {status} --watch"),
            (Moment::Held, Sender::Cli) => format!(
                "decide: kubectl canary analyze {target}, then kubectl canary promote {target} --canary N|--full, \
                 or kubectl canary abort {target}"
            ),
            (Moment::Held, Sender::CliAuto) => format!(
                "nothing: the analysis follows after the interval; to stop, kubectl canary abort {target}"
            ),
            (Moment::Held, Sender::Controller) => {
                "nothing: the analysis follows after the interval; to stop, revert the commit in Git".into()
            }
            (Moment::AnalysisPassed, _) => "nothing: the canary moves on by itself".into(),
            (Moment::AnalysisFailed, Sender::Cli | Sender::CliAuto) => format!(
                "nothing: the canary is rolled back; fix the release and start again, see {status}"
            ),
            (Moment::AnalysisFailed | Moment::RolledBack, Sender::Controller) => {
                "push a fix or revert the commit".into()
            }
            (Moment::AnalysisInconclusive, Sender::Cli | Sender::CliAuto) => format!(
                "decide: kubectl canary promote {target} --full or kubectl canary abort {target}"
            ),
            (Moment::AnalysisInconclusive, Sender::Controller) => {
                "nothing: analysed again after the interval; to stop, revert the commit in Git".into()
            }
            (Moment::Promoted, _) => "nothing: the release is out".into(),
            (Moment::RolledBack, Sender::Cli | Sender::CliAuto) => {
                "fix the release and start a new canary".into()
            }
            (Moment::Stuck, Sender::Cli | Sender::CliAuto) => {
                format!("look: {status}; to go back, kubectl canary abort {target}")
            }
            (Moment::Stuck, Sender::Controller) => {
                format!("look: {status}; to go back, revert the commit in Git")
            }
            (Moment::ForeignChange, _) => format!("look: {status}"),
        }
    }
}

/// Who sends a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The CLI, run by a person (`start`, `promote`, `abort`).
    Cli,
    /// The CLI's automated progression (`start --auto`, `apply --auto`).
    CliAuto,
    /// The GitOps controller.
    Controller,
}

impl Sender {
    /// The program's name, as the notice says who sent it.
    pub fn program(self) -> &'static str {
        match self {
            Sender::Cli | Sender::CliAuto => "kubectl-canary",
            Sender::Controller => "kubectl-canary-controller",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_asks_the_cli_user_and_the_git_user_for_different_things() {
        let cases = [
            (Moment::AnalysisFailed, Sender::CliAuto, "fix the release"),
            (
                Moment::AnalysisFailed,
                Sender::Controller,
                "push a fix or revert the commit",
            ),
            (
                Moment::RolledBack,
                Sender::Controller,
                "push a fix or revert the commit",
            ),
            (
                Moment::Held,
                Sender::Cli,
                "kubectl canary promote deploy/web -n shop --canary N|--full",
            ),
            (Moment::Held, Sender::Controller, "revert the commit in Git"),
            (
                Moment::AnalysisInconclusive,
                Sender::CliAuto,
                "kubectl canary abort deploy/web -n shop",
            ),
            (
                Moment::AwaitingApproval {
                    awaiting: "kubectl canary promote deploy/web --full by a release manager"
                        .into(),
                },
                Sender::Cli,
                "by a release manager",
            ),
        ];
        for (moment, sender, expected) in cases {
            let next = moment.next_step(sender, "shop", "web");
            assert!(
                next.contains(expected),
                "{moment:?} from {sender:?}: {next}"
            );
        }
    }

    #[test]
    fn the_programs_are_named_as_the_records_name_them() {
        assert_eq!(Sender::CliAuto.program(), "kubectl-canary");
        assert_eq!(Sender::Controller.program(), "kubectl-canary-controller");
    }
}
