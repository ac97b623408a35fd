//! The command's own advice after a library error.
//!
//! The library's messages say what happened and what a *program* can do (which method, which
//! option). Someone at a shell needs the command or flag instead, so for the errors where one
//! helps, the error line keeps what happened and gives, in place of the library's advice, a hint
//! in the command's terms:
//!
//! ```text
//! shmsem: timed out after 300 ms waiting for weight 1; `shmsem show gpu` lists its holders
//! ```

use crate::cli::{Cli, Command, ScopeArg};

/// Where the failed command looked: its semaphore's name (when it names one) and the
/// `--scope`/`--namespace` flags that reach the same place (none for the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    name: Option<String>,
    flags: String,
}

impl Place {
    /// The place `cli` names.
    pub fn of(cli: &Cli) -> Place {
        let name = match &cli.command {
            Command::Create(a) => Some(&a.name),
            Command::Run(a) => Some(&a.take.name),
            Command::Acquire(a) => Some(&a.take.name),
            Command::Release(a) => Some(&a.name),
            Command::Show(a) => Some(&a.name),
            Command::Set(a) => Some(&a.name),
            Command::Rm(a) => Some(&a.name),
            Command::Watch(a) => a.name.as_ref(),
            _ => None,
        };
        let mut flags = String::new();
        match cli.scope {
            ScopeArg::Local => {}
            ScopeArg::Tree => flags.push_str(" --scope self"),
            ScopeArg::Global => flags.push_str(" --scope global"),
            ScopeArg::Cluster => flags.push_str(" --scope cluster"),
        }
        if cli.namespace != shmsem::DEFAULT_NAMESPACE {
            flags.push_str(" --namespace ");
            flags.push_str(&cli.namespace);
        }
        Place {
            name: name.cloned(),
            flags,
        }
    }

    /// `shmsem SUBCOMMAND NAME ARGS` with this place's flags: the command's own name when
    /// `name` is `None`, else `name` (`NAME` when neither is known).
    fn command(&self, subcommand: &str, name: Option<&str>, args: &str) -> String {
        let name = name.or(self.name.as_deref()).unwrap_or("NAME");
        format!("`shmsem {subcommand} {name}{args}{}`", self.flags)
    }
}

/// The hint that follows `err`'s message on the command's error line, if there is one.
pub fn hint(err: &shmsem::Error, place: &Place) -> Option<String> {
    use shmsem::Error as E;
    Some(match err {
        E::Timeout { .. } => format!("{} lists its holders", place.command("show", None, "")),
        E::WouldBlock { .. } => {
            "--timeout T (such as 250ms or 2s) waits up to T, and no --timeout as long as it takes"
                .to_owned()
        }
        E::WeightTooLarge { .. } => {
            format!("{} raises it", place.command("set", None, " --capacity N"))
        }
        E::TableFull { .. } => {
            "`shmsem rm NAME` removes an unused semaphore, and --namespace NS picks another \
             namespace"
                .to_owned()
        }
        E::NotFound { .. } => format!(
            "`shmsem ls{}` lists the semaphores of this --scope and --namespace",
            place.flags
        ),
        E::NoNamespace { .. } => format!(
            "{} creates it",
            place.command("create", None, " --group G --mode 0660")
        ),
        E::InUse { name, .. } => format!(
            "{} removes it anyway",
            place.command("rm", Some(name), " --force")
        ),
        E::Busy { holder, .. } => {
            let pid = holder.map_or_else(|| "PID".to_owned(), |p| p.to_string());
            format!("`shmsem ps {pid}` names what it holds")
        }
        E::Mismatch { .. } => {
            "without --group and --mode the command uses the namespace as it is".to_owned()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn place(args: &[&str]) -> Place {
        Place::of(&Cli::try_parse_from(args).expect("parses"))
    }

    #[test]
    fn a_place_is_the_name_and_the_flags_that_reach_it() {
        assert_eq!(
            place(&["shmsem", "acquire", "gpu"]),
            Place {
                name: Some("gpu".into()),
                flags: String::new()
            }
        );
        assert_eq!(
            place(&[
                "shmsem",
                "--scope",
                "global",
                "show",
                "x",
                "--namespace",
                "ci"
            ]),
            Place {
                name: Some("x".into()),
                flags: " --scope global --namespace ci".into()
            }
        );
        assert_eq!(place(&["shmsem", "ls"]).name, None);
    }

    #[test]
    fn hints_name_the_command_to_run() {
        let at = place(&["shmsem", "--scope", "global", "run", "gpu", "--", "true"]);
        let timeout = shmsem::Error::Timeout {
            weight: 1,
            timeout_ms: 5,
        };
        assert_eq!(
            hint(&timeout, &at).as_deref(),
            Some("`shmsem show gpu --scope global` lists its holders")
        );
        let busy = shmsem::Error::Busy {
            what: "namespace's table lock",
            holder: Some(42),
            waited_ms: 5000,
        };
        assert_eq!(
            hint(&busy, &at).as_deref(),
            Some("`shmsem ps 42` names what it holds")
        );
        let in_use = shmsem::Error::InUse {
            name: "x".into(),
            value: 1,
        };
        assert_eq!(
            hint(&in_use, &place(&["shmsem", "rm", "x"])).as_deref(),
            Some("`shmsem rm x --force` removes it anyway")
        );
        let corrupt = shmsem::Error::Corrupt { reason: "r".into() };
        assert_eq!(hint(&corrupt, &at), None);
    }
}
