//! Owner commands: `/help`, `/status`, `/new`. Parsed from the owner's
//! messages before the model sees them (anyone else's `/…` text is just
//! text); an unknown command gets the list, never the model.
//!
//! Pure parsing; the daemon's agent carries the commands out.

/// A parsed owner command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Status,
    /// Start a fresh conversation: earlier messages leave the prompt.
    New,
    /// `/something` Hearth does not know.
    Unknown(String),
}

impl Command {
    /// The command's name, for the audit log (never its arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Status => "status",
            Command::New => "new",
            Command::Unknown(_) => "unknown",
        }
    }
}

/// What `/help` says.
pub const HELP: &str =
    "Commands:\n/help: this list\n/status: model, uptime, queue\n/new: start a fresh conversation";

/// The command in `text`, if it is one (starts with `/`).
pub fn parse(text: &str) -> Option<Command> {
    let rest = text.trim().strip_prefix('/')?;
    let word = rest.split_whitespace().next().unwrap_or("");
    Some(match word.to_ascii_lowercase().as_str() {
        "help" | "start" => Command::Help,
        "status" => Command::Status,
        "new" | "reset" => Command::New,
        _ => Command::Unknown(word.chars().take(32).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_non_commands() {
        assert_eq!(parse("/help"), Some(Command::Help));
        assert_eq!(parse("  /STATUS now"), Some(Command::Status));
        assert_eq!(parse("/new"), Some(Command::New));
        assert_eq!(parse("/rm -rf"), Some(Command::Unknown("rm".into())));
        assert_eq!(parse("/"), Some(Command::Unknown(String::new())));
        assert_eq!(parse("hello /help"), None);
        assert_eq!(parse("what is 3/4?"), None);
    }
}
