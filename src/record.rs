//! `opsh run --record FILE` writes every primitive call of a run (arguments
//! and result, secrets redacted) to a JSON file; `--replay FILE` (and
//! `replay(FILE)` in a test) answers the same calls from it, reports calls
//! that differ, and turns replayed mutations into plan entries. Both hook in
//! through `testing::hooks`, which dispatch calls for every primitive.

use crate::dispatch::{audit_args, scrub_json, Call, ErrorKind, OpError};
use crate::error::CliError;
use crate::value::{from_json, to_json};
use rhai::Dynamic;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const FORMAT: i64 = 1;

pub struct Recorder {
    path: PathBuf,
    script: String,
    args: Value,
    calls: Vec<Value>,
}

impl Recorder {
    pub fn new(path: PathBuf, script: &str, args: &rhai::Map) -> Recorder {
        Recorder {
            path,
            script: script.to_string(),
            args: scrub_json(to_json(&Dynamic::from_map(args.clone())), None),
            calls: Vec::new(),
        }
    }

    pub fn save(&self) -> std::io::Result<usize> {
        // Recordings are committed as test fixtures: the whole file passes
        // through the redaction every output does (a handle's target can
        // be a URL with its password, a result can echo a secret).
        let doc = scrub_json(
            json!({
                "opsh_recording": FORMAT,
                "script": self.script,
                "args": self.args,
                "recorded_at": crate::audit::timestamp(std::time::SystemTime::now()),
                "calls": self.calls,
            }),
            None,
        );
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(&self.path, text + "\n")?;
        Ok(self.calls.len())
    }
}

struct Entry {
    primitive: String,
    args: Value,
    result: Value,
    error: Option<Value>,
}

pub struct Replay {
    entries: Vec<Entry>,
    used: Vec<bool>,
    seen: usize,
    /// Calls that differ from the recording, in words.
    pub differences: Vec<String>,
    /// The mutations the recording made, which the replay only planned.
    pub plans: Vec<Value>,
}

/// A loaded recording: the script it ran, its args, and the calls.
pub struct Recording {
    pub script: String,
    pub args: rhai::Map,
    pub replay: Replay,
}

pub fn load(path: &Path) -> Result<Recording, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the recording {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a recording (invalid JSON: {e})", path.display()))?;
    if doc.get("opsh_recording").and_then(Value::as_i64) != Some(FORMAT) {
        return Err(format!(
            "{} is not an opsh recording (no \"opsh_recording\": {FORMAT})",
            path.display()
        ));
    }
    let entries: Vec<Entry> = doc
        .get("calls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| Entry {
                    primitive: c
                        .get("primitive")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    args: c.get("args").cloned().unwrap_or(json!({})),
                    result: c.get("result").cloned().unwrap_or(Value::Null),
                    error: c.get("error").cloned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let args = from_json(doc.get("args").unwrap_or(&Value::Null))
        .try_cast::<rhai::Map>()
        .unwrap_or_default();
    Ok(Recording {
        script: doc
            .get("script")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        args,
        replay: Replay {
            used: vec![false; entries.len()],
            entries,
            seen: 0,
            differences: Vec::new(),
            plans: Vec::new(),
        },
    })
}

impl Replay {
    fn find(&self, f: impl Fn(&Entry) -> bool) -> Option<usize> {
        (0..self.entries.len()).find(|&i| !self.used[i] && f(&self.entries[i]))
    }

    /// Recorded calls the replayed run never made.
    pub fn unused(&self) -> Vec<String> {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, u)| !**u)
            .map(|(e, _)| format!("recorded call {}({}) was not made", e.primitive, e.args))
            .collect()
    }
}

/// The recorded answer to this call, when a replay is active. Local
/// primitives (clock, env) not in the recording run for real.
pub fn replay_answer(call: &Call, system: bool) -> Option<Result<Dynamic, OpError>> {
    let mut guard = call.session.hooks.replay.lock().ok()?;
    let replay = guard.as_mut()?;
    let name = call.prim.full_name();
    let args = audit_args(&call.args, call.prim);
    replay.seen += 1;
    let n = replay.seen;
    let idx = match replay.find(|e| e.primitive == name && e.args == args) {
        Some(i) => i,
        None if !system => return None,
        None => match replay.find(|e| e.primitive == name) {
            Some(i) => {
                let was = &replay.entries[i].args;
                replay.differences.push(format!(
                    "call {n}: {name}({args}) differs from the recording: {name}({was})"
                ));
                i
            }
            None => {
                replay
                    .differences
                    .push(format!("call {n}: {name}({args}) is not in the recording"));
                return Some(Err(OpError::failed(format!(
                    "{name} was not called in the recorded run, so replay has no answer"
                ))
                .with_hint("the script now makes a call the recording lacks; record a new run, or stub the call in the test")));
            }
        },
    };
    replay.used[idx] = true;
    let entry = &replay.entries[idx];
    if call.prim.mutates() {
        replay.plans.push(json!({"primitive": name, "args": args}));
        let mut plan =
            crate::testing::hooks::unapplied(call, "replayed: not applied").cast::<rhai::Map>();
        plan.insert("recorded".into(), from_json(&entry.result));
        return Some(Ok(Dynamic::from_map(plan)));
    }
    Some(match &entry.error {
        Some(e) => {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let kind = match text("kind").as_deref() {
                Some("timeout") => ErrorKind::Timeout,
                Some("refused") => ErrorKind::Refused,
                Some("bad_input") => ErrorKind::BadInput,
                _ => ErrorKind::Failed,
            };
            let mut err = OpError::new(kind, text("message").unwrap_or_default());
            err.cause = text("cause");
            err.hint = text("hint");
            Err(err)
        }
        None => Ok(from_json(&entry.result)),
    })
}

/// Adds this call to the recording, when one is being made.
pub fn record_call(call: &Call, result: &Result<Dynamic, OpError>) {
    let Ok(mut guard) = call.session.hooks.recorder.lock() else {
        return;
    };
    let Some(rec) = guard.as_mut() else { return };
    let mut entry = json!({
        "primitive": call.prim.full_name(),
        "target": call.handle_target().map(crate::redact::redact),
        "args": audit_args(&call.args, call.prim),
        "mutates": call.prim.mutates(),
    });
    match result {
        Ok(v) => entry["result"] = scrub_json(to_json(v), None),
        Err(e) => {
            entry["error"] = json!({
                "kind": crate::dispatch::kind_name(e.kind),
                "message": crate::redact::redact(&e.message),
                "cause": e.cause.as_deref().map(crate::redact::redact),
                "hint": e.hint.as_deref().map(crate::redact::redact),
            })
        }
    }
    rec.calls.push(entry);
}

/// Ends a recorded or replayed run: writes the recording, reports replay
/// differences. Returns the exit code the run ends with, and the error to
/// render when the recording could not be written (the run then ends in 2
/// at least: a fixture someone expects is missing).
pub fn finish(session: &crate::session::Session, code: i32) -> (i32, Option<CliError>) {
    let mut code = code;
    let mut error = None;
    if let Some(rec) = session
        .hooks
        .recorder
        .lock()
        .ok()
        .and_then(|mut r| r.take())
    {
        match rec.save() {
            Ok(n) => session
                .out
                .note(&format!("recorded {n} call(s) to {}", rec.path.display())),
            Err(e) => {
                code = code.max(crate::exit::ERROR);
                error = Some(
                    CliError::failed(format!(
                        "cannot write the recording {}: {e}",
                        rec.path.display()
                    ))
                    .with_hint(
                        "the run itself went on; check that the directory exists and is writable",
                    ),
                );
            }
        }
    }
    if let Some(rp) = session.hooks.replay.lock().ok().and_then(|mut r| r.take()) {
        let mut diffs = rp.differences.clone();
        diffs.extend(rp.unused());
        for p in &rp.plans {
            session.out.note(&format!(
                "[replay] planned, not applied: {}({})",
                p["primitive"].as_str().unwrap_or("?"),
                p["args"]
            ));
        }
        if diffs.is_empty() {
            session.out.note("replay: every call matched the recording");
        } else {
            for d in &diffs {
                session.out.note(&format!("replay difference: {d}"));
            }
            session.out.note(&format!(
                "replay: {} difference(s) from the recording",
                diffs.len()
            ));
            if code == crate::exit::OK {
                code = crate::exit::CHECK_FAILED;
            }
        }
    }
    (code, error)
}

/// What `--record` / `--replay` set up before a run starts.
#[derive(Default)]
pub struct Attach {
    recorder: Option<Recorder>,
    replay: Option<Replay>,
}

impl Attach {
    /// Loads the recording to replay (its args stand in when the command
    /// line gives none) or prepares a new one.
    pub fn prepare(
        record: Option<&Path>,
        replay: Option<&Path>,
        script: &str,
        args: &mut rhai::Map,
    ) -> Result<Attach, String> {
        let mut a = Attach::default();
        if let Some(p) = replay {
            let rec = load(p)?;
            if args.is_empty() {
                *args = rec.args;
            }
            a.replay = Some(rec.replay);
        }
        if let Some(p) = record {
            a.recorder = Some(Recorder::new(p.to_path_buf(), script, args));
        }
        Ok(a)
    }

    pub fn install(self, session: &crate::session::Session) {
        if let Ok(mut r) = session.hooks.recorder.lock() {
            *r = self.recorder;
        }
        if let Ok(mut r) = session.hooks.replay.lock() {
            *r = self.replay;
        }
    }
}
