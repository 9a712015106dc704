//! The command line as clap types: every flag, its help text, and which
//! flags a fleet parent keeps to itself. Parsing only; `crate::run` acts.

use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The program's name, as usage lines and errors say it.
const NAME: &str = "opsh";

#[derive(Parser, Debug)]
#[command(
    name = NAME,
    version = crate::commands::version::SHORT,
    about = "A scriptable operations shell: runbooks as versioned, testable scripts",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Report what mutating primitives would do, reading real state, and change nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Let mutations through an active freeze window; the reason is audited and reported.
    #[arg(long, global = true, value_name = "REASON")]
    pub break_glass: Option<String>,
    /// No line per change on stderr (`scaled deployment api ...`); errors still show.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Do not ask for confirmation on protected targets.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// How `show` renders values: text tables, `wide` (every column), json or
    /// yaml. json: stdout carries only JSON documents, one per line (print()
    /// goes to stderr).
    #[arg(long, short = 'o', value_enum, default_value = "text", global = true)]
    pub output: OutputArg,
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub color: ColorArg,
    /// Config file (default: $XDG_CONFIG_HOME/opsh/config.toml; env OPSH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Audit log (default: $XDG_STATE_HOME/opsh/audit.jsonl; env OPSH_AUDIT_LOG).
    #[arg(long, global = true, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Stop the whole run after this long, e.g. "10m" (in the console: each entry); 0s: no limit.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Per-primitive-call timeout (default 30s, or `[defaults] timeout`); 0s: no limit.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub call_timeout: Option<Duration>,
    /// Stop a script after this many Rhai operations (runaway loops).
    #[arg(long, global = true)]
    pub max_operations: Option<u64>,
    /// Stop a script whose values grow the heap past this, e.g. "512MiB" (default 1GiB; 0: no limit).
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::engine::memory::parse_size)]
    pub max_memory: Option<u64>,
    /// The default target of a kind for this run, e.g. `pg=prod-1` or
    /// `kube=CONTEXT/NAMESPACE` (repeatable).
    #[arg(long = "target", global = true, value_name = "KIND=NAME")]
    pub targets: Vec<String>,
    /// The Kubernetes context (or `[kube.NAME]` target) k8s uses, as kubectl's `--context`.
    #[arg(long, global = true, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// The Kubernetes namespace k8s uses, as kubectl's `-n`.
    #[arg(long, short = 'n', global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Logs on stderr: text or json (one object per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: crate::logging::LogFormat,
    /// More log detail: -v info, -vv debug (every primitive call). Default warn; OPSH_LOG=LEVEL overrides.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(flatten)]
    pub unattended: Unattended,
}

/// Flags for cron, CronJobs and fleets (docs/unattended.md).
#[derive(Args, Debug, Clone)]
// The FLEET_PARENT group marks the flags an `--each-target` parent keeps to
// itself: it takes the lock, writes the reports and runs the fleet, and
// gives each child `--no-lock` (and its own `--report`); the children get
// the rest of the command line (`fleet_parent_flags`).
#[command(group(
    ArgGroup::new(FLEET_PARENT)
        .multiple(true)
        .args(["lock", "no_lock", "report", "each_target", "concurrency", "max_failures"])
))]
pub struct Unattended {
    /// Run under this lock: a second run with the same lock exits 75 at once.
    /// Default: a `// opsh: lock=NAME` line in the script's header comment.
    #[arg(long, global = true, value_name = "NAME")]
    pub lock: Option<String>,
    /// Ignore the script's header lock.
    #[arg(long, global = true, conflicts_with = "lock")]
    pub no_lock: bool,
    /// Write a JSON run report here (docs/unattended.md).
    #[arg(long, global = true, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Notify this `[notify.NAME]` target or webhook URL (repeatable).
    #[arg(long, global = true, value_name = "TARGET")]
    pub notify: Vec<String>,
    /// When to notify.
    #[arg(long, value_enum, default_value = "failure", global = true)]
    pub notify_on: crate::unattended::NotifyOn,
    /// Push opsh_run_* metrics to the default Pushgateway after the run.
    #[arg(long, global = true)]
    pub push_metrics: bool,
    /// Run the script once per target of KIND whose name matches GLOB, e.g. `pg:prod-*`.
    #[arg(long, global = true, value_name = "KIND:GLOB")]
    pub each_target: Option<String>,
    /// With --each-target: how many targets run at once.
    #[arg(long, global = true, default_value_t = 4)]
    pub concurrency: usize,
    /// With --each-target: start no new target after this many failures.
    #[arg(long, global = true)]
    pub max_failures: Option<usize>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OutputArg {
    Text,
    /// Tables with every column, also those left out by default.
    Wide,
    Json,
    Yaml,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a script (`-` reads it from stdin); `opsh run FILE --help` lists
    /// the script's arguments.
    // Our own -h/--help (RunArgs::help): clap's would answer before the
    // script is known.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Compile scripts without running them and report every problem found.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run runbook tests: every `fn test_*()` in tests/runbooks/*_test.rhai.
    Test(TestArgs),
    /// List primitives, or describe one: `opsh help pg.query`.
    Help {
        name: Option<String>,
        /// Print the whole reference as Markdown (docs/reference.md).
        #[arg(long)]
        markdown: bool,
    },
    /// Run jobs on cron schedules from a TOML file, for places without cron
    /// (a container); each job runs as `opsh run` under its lock and timeout.
    Schedule { file: PathBuf },
    /// Start ephemeral PostgreSQL and Redis servers on free loopback ports,
    /// and the monitoring stack (Prometheus, Alertmanager, Pushgateway,
    /// exporters) when it is installed.
    Sandbox {
        #[command(subcommand)]
        command: Option<SandboxCommand>,
        /// Also start Prometheus, Alertmanager, the Pushgateway and the
        /// exporters (adds ~6 s: Prometheus's first scrape of every target);
        /// without `run`, fail when they are not installed rather than
        /// start without them.
        #[arg(long, global = true)]
        monitoring: bool,
    },
    /// The version, the commit it was built from and the build date.
    Version,
    /// A completion script for a shell: `opsh completions bash > /etc/bash_completion.d/opsh`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The manual page (roff): `opsh man | man -l -`.
    Man,
    /// What runs changed, from the audit log: plans, confirmations,
    /// refusals and outcomes per run, as text, Markdown (a postmortem
    /// section) or JSON; `--incident ID` posts it as PagerDuty notes.
    Timeline(TimelineArgs),
    /// Run a script with every mutation planned from real state and none
    /// made, and write the plan (mutations, preconditions, script digest).
    Plan(PlanArgs),
    /// Make exactly the mutations of a plan, in order, each only while the
    /// state it was planned from still holds.
    Apply { plan: PathBuf },
    /// Approve a plan as the current user (signed with `[approvals]` key).
    Approve { plan: PathBuf },
    /// `opsh FILE.rhai [ARGS]`: the same as `opsh run FILE.rhai [ARGS]`.
    #[command(external_subcommand)]
    Script(Vec<OsString>),
}

#[derive(Args, Debug, Clone, Default)]
pub struct TimelineArgs {
    /// One run (its id, or a unique prefix of it: a run that changed
    /// something prints it on stderr). Default: every run within --since.
    pub run_id: Option<String>,
    /// Runs with records this recent, e.g. "12h" (default 24h; with a
    /// RUN_ID, no limit).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// text, markdown or json (`--output json` also gives JSON).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TimelineFormat,
    /// Post each run's timeline as a note on this PagerDuty incident
    /// (a mutation: --dry-run shows the notes; PAGERDUTY_FROM is the author).
    #[arg(long, value_name = "ID")]
    pub incident: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimelineFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Run a script against a fresh sandbox, then tear it down.
    #[command(disable_help_flag = true)]
    Run {
        #[command(flatten)]
        args: RunArgs,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// The script (`-`: stdin).
    #[arg(required_unless_present = "help")]
    pub file: Option<PathBuf>,
    /// Print help: with a script, the arguments it declares.
    #[arg(long, short = 'h')]
    pub help: bool,
    /// Script argument, reaching the script as `args.KEY` (repeatable).
    #[arg(long = "arg", short = 'a', value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// Record every primitive call (arguments, result; secrets masked) to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Answer primitive calls from a recording; report calls that differ; plan mutations.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Run only these checks (checks stdlib; names or `prefix*`, repeatable or comma-separated).
    #[arg(long, value_name = "CHECK", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Skip these checks (checks stdlib; names or `prefix*`).
    #[arg(long, value_name = "CHECK", value_delimiter = ',')]
    pub skip: Vec<String>,
}

/// `opsh plan`.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// The script.
    pub file: PathBuf,
    /// Script argument, reaching the script as `args.KEY` (repeatable).
    #[arg(long = "arg", short = 'a', value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// Where to write the plan (`--out`, as Terraform's `-out`: `-o` is
    /// the output format everywhere, as in kubectl).
    #[arg(long = "out", value_name = "FILE")]
    pub out: PathBuf,
}

/// `opsh test`.
#[derive(Args, Debug, Clone, Default)]
pub struct TestArgs {
    /// Test files or directories (default: tests/runbooks).
    pub paths: Vec<PathBuf>,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Only tests whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Run against a fresh sandbox (PostgreSQL, Redis, Kubernetes API): unstubbed calls reach it.
    #[arg(long)]
    pub sandbox: bool,
}

/// The global flags each command uses; the others are hidden from its
/// `--help` (they still parse, so a flag placed anywhere keeps working).
/// `run` and `sandbox run` use them all.
const APPLIES: &[(&str, &[&str])] = &[
    ("check", &["color", "verbose", "log_format"]),
    (
        "test",
        &[
            "output",
            "color",
            "config",
            "timeout",
            "call_timeout",
            "max_operations",
            "targets",
            "context",
            "namespace",
            "verbose",
            "log_format",
        ],
    ),
    ("help", &["color"]),
    (
        "schedule",
        &["config", "audit_log", "color", "verbose", "log_format"],
    ),
    ("sandbox", &["config", "color", "verbose", "log_format"]),
    ("version", &[]),
    ("completions", &[]),
    ("man", &[]),
];

/// The command line, with each command's `--help` showing only the global
/// flags that apply to it.
pub fn command() -> clap::Command {
    command_for(|_| true)
}

/// `command()` with the hidden copies made only in the commands `used`
/// says may run: hiding changes only the help of the command that runs,
/// and cloning every global flag into every command is a tenth of a run's
/// start-up.
fn command_for(used: impl Fn(&str) -> bool) -> clap::Command {
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    // clap copies a global flag into a subcommand only when the subcommand
    // has none of that id: a hidden copy given here stays hidden, and
    // still parses and reaches the same matches.
    for (name, keep) in APPLIES.iter().filter(|(name, _)| used(name)) {
        cmd = cmd.mut_subcommand(*name, |mut sub| {
            for a in &globals {
                if !keep.contains(&a.get_id().as_str()) {
                    sub = sub.arg(a.clone().hide(true));
                }
            }
            // `sandbox run` is a run: every flag applies.
            if *name == "sandbox" {
                sub = sub.mut_subcommand("run", |mut run| {
                    for a in &globals {
                        run = run.arg(a.clone());
                    }
                    run
                });
            }
            sub
        });
    }
    cmd
}

/// Parses `argv` with `command()`.
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    // A command's name is on its command line (there are no aliases).
    let mut cmd = command_for(|name| argv.iter().any(|a| a == name));
    if let Some(alone) = argv
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|first| alone(&cmd, first))
    {
        std::mem::forget(std::mem::replace(&mut cmd, alone));
    }
    let matches = cmd.try_get_matches_from_mut(argv)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd));
    // Freeing clap's command tree, a clone of every global flag in every
    // subcommand, is a fifth of the parse: a process parses its command
    // line once or twice, so it is left to the exit.
    std::mem::forget(cmd);
    cli
}

/// `cmd` with only its subcommand `name`, for a command line that starts
/// with it (`opsh run FILE`, as cron and runbooks call opsh): that command
/// parses the same, and clap no longer copies every global flag into the
/// thirteen others first, which was most of a run's parse. None when `name`
/// is not a command.
fn alone(cmd: &clap::Command, name: &str) -> Option<clap::Command> {
    let sub = cmd.find_subcommand(name)?.clone();
    let mut root = clap::Command::new(NAME)
        .disable_help_subcommand(cmd.is_disable_help_subcommand_set())
        .subcommand(sub);
    for a in cmd.get_arguments() {
        root = root.arg(a.clone());
    }
    for g in cmd.get_groups() {
        root = root.group(g.clone());
    }
    Some(root)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))
}

/// The id of the group of parent-only flags on `Unattended`.
const FLEET_PARENT: &str = "fleet_parent";

/// A flag as it is spelled on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// Without the leading `--`.
    pub long: String,
    /// Whether it takes a value (`--lock NAME`) or stands alone (`--no-lock`).
    pub takes_value: bool,
}

/// The flags of the `FLEET_PARENT` group, read from the clap definitions.
pub fn fleet_parent_flags() -> Vec<Flag> {
    let cmd = Cli::command();
    let Some(group) = cmd.get_groups().find(|g| g.get_id() == FLEET_PARENT) else {
        return Vec::new();
    };
    let ids: Vec<_> = group.get_args().collect();
    cmd.get_arguments()
        .filter(|a| ids.contains(&a.get_id()))
        .filter_map(|a| {
            Some(Flag {
                long: a.get_long()?.to_string(),
                takes_value: a.get_action().takes_values(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        // clap's own checks: every id a group or a conflict names exists.
        Cli::command().debug_assert();
    }

    /// What `parse` makes of `argv`, and what the whole command tree does.
    fn both_ways(argv: &[&str]) -> (String, String) {
        use clap::FromArgMatches;
        let shown = |r: Result<Cli, clap::Error>| match r {
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        };
        let mut full = command_for(|name| argv.contains(&name));
        let whole = full
            .try_get_matches_from_mut(argv)
            .and_then(|m| Cli::from_arg_matches(&m));
        (shown(parse(argv)), shown(whole))
    }

    #[test]
    fn a_command_line_parses_the_same_with_only_its_command_in_the_tree() {
        let lines: &[&[&str]] = &[
            &["opsh", "run", "f.rhai"],
            &[
                "opsh",
                "run",
                "f.rhai",
                "--arg",
                "a=1",
                "--dry-run",
                "-o",
                "json",
            ],
            &[
                "opsh",
                "run",
                "-",
                "--yes",
                "--timeout",
                "5m",
                "--each-target",
                "pg:*",
                "--concurrency",
                "3",
            ],
            &["opsh", "run", "f.rhai", "--timeout", "five"],
            &["opsh", "run", "f.rhai", "--dry-rn"],
            &["opsh", "run"],
            &["opsh", "run", "f.rhai", "--lock", "x", "--no-lock"],
            &["opsh", "check"],
            &["opsh", "check", "a.rhai", "b.rhai", "--color", "never"],
            &["opsh", "check", "a.rhai", "--dry-run"],
            &["opsh", "check", "--help"],
            &["opsh", "test", "--only", "x"],
            &["opsh", "help", "pg.query"],
            &["opsh", "help", "--markdown"],
            &["opsh", "schedule", "--help"],
            &["opsh", "sandbox", "run", "f.rhai", "--dry-run"],
            &["opsh", "sandbox", "nonsense"],
            &["opsh", "version"],
            &["opsh", "completions", "bash"],
            &["opsh", "man"],
            &["opsh", "run", "run"],
            &["opsh", "check", "run"],
        ];
        for argv in lines {
            let (reduced, whole) = both_ways(argv);
            assert_eq!(reduced, whole, "{argv:?}");
        }
        // Every command, bare and with --help.
        for sub in Cli::command().get_subcommands() {
            for argv in [
                vec!["opsh", sub.get_name()],
                vec!["opsh", sub.get_name(), "--help"],
            ] {
                let (reduced, whole) = both_ways(&argv);
                assert_eq!(reduced, whole, "{argv:?}");
            }
        }
    }

    #[test]
    fn fleet_parent_flags_come_from_the_group() {
        let flags = fleet_parent_flags();
        let spelled: Vec<(&str, bool)> = flags
            .iter()
            .map(|f| (f.long.as_str(), f.takes_value))
            .collect();
        assert_eq!(
            spelled,
            [
                ("lock", true),
                ("no-lock", false),
                ("report", true),
                ("each-target", true),
                ("concurrency", true),
                ("max-failures", true),
            ]
        );
    }

    #[test]
    fn the_group_does_not_bind_its_flags_together() {
        // A group is exclusive unless `multiple`; these flags combine freely,
        // before and after the subcommand.
        let cli = Cli::try_parse_from([
            "opsh",
            "--each-target",
            "pg:*",
            "--lock",
            "l",
            "run",
            "f.rhai",
            "--report",
            "r.json",
            "--concurrency",
            "2",
        ]);
        let u = match cli {
            Ok(c) => c.global.unattended,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(u.each_target.as_deref(), Some("pg:*"));
        assert_eq!(u.lock.as_deref(), Some("l"));
        assert_eq!(u.report, Some(PathBuf::from("r.json")));
        assert_eq!(u.concurrency, 2);
    }
}
