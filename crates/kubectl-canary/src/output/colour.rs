//! Colour for people at a terminal: only when stdout is a terminal and `NO_COLOR` is unset
//! or empty (<https://no-color.org>). Piped or redirected output never carries escapes.

use std::io::IsTerminal;

/// Whether what goes to stdout may be coloured.
pub fn stdout_enabled() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A colour of the text renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// What is wrong.
    Problem,
    /// The stable side.
    Stable,
    /// The canary side (healthy).
    Canary,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Problem => "1;31",
            Paint::Stable => "32",
            Paint::Canary => "33",
        }
    }

    /// The table cell colour of the same paint.
    pub fn cell(self) -> comfy_table::Color {
        match self {
            Paint::Problem => comfy_table::Color::Red,
            Paint::Stable => comfy_table::Color::Green,
            Paint::Canary => comfy_table::Color::Yellow,
        }
    }
}

/// `text` in `paint` when `on`, else as it is.
pub fn paint(text: &str, paint: Paint, on: bool) -> String {
    if on {
        format!("\u{1b}[{}m{text}\u{1b}[0m", paint.code())
    } else {
        text.to_string()
    }
}
