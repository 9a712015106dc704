//! The engine's limits and fast paths (src/engine/): the memory budget
//! (memory.rs) bounds every value a script builds, maps too, with a clear
//! error and exit 2; collections grow at O(1) per operation (no
//! re-measuring after each push); module values cost nothing on ordinary
//! variable access yet never hide a script's own names.

use crate::support::*;
use std::time::{Duration, Instant};

/// Distinct 1 MiB strings in a map: without a bound this grows until the
/// kernel kills the process; with it the run stops at the budget.
const MAP_OF_MIB_STRINGS: &str = r#"
let base = "";
base.pad(1048576, "y");
let m = #{};
for i in 0..100000 {
    m[`k${i}`] = base + i;
}
print(m.len());
"#;

#[test]
fn a_map_of_big_strings_stops_at_the_memory_limit() {
    let env = Env::new();
    let r = env
        .script(MAP_OF_MIB_STRINGS)
        .option("--max-memory", "64MiB")
        .run();
    r.assert_code(2)
        .assert_stderr_contains("the script exceeded its memory limit (64 MiB)")
        .assert_stderr_contains("m[`k${i}`] = base + i;")
        .assert_stderr_contains("--max-memory");
    assert_eq!(r.stdout_lines(), Vec::<&str>::new(), "nothing printed");
}

#[test]
fn the_memory_limit_comes_from_the_config_and_bounds_arrays_and_strings() {
    let env = Env::new();
    let cfg = env.write_config("[defaults]\nmax_memory = \"32MiB\"\n");
    // An array of arrays.
    env.script("let a = []; loop { a.push([1, 2, 3, 4, 5, 6, 7, 8]); }")
        .option("--config", cfg.display().to_string())
        .run()
        .assert_code(2)
        .assert_stderr_contains("memory limit (32 MiB)");
    // A string that doubles.
    env.script("let s = \"x\"; loop { s += s; }")
        .option("--config", cfg.display().to_string())
        .run()
        .assert_code(2)
        .assert_stderr_contains("memory limit (32 MiB)");
    // One operation asking for gigabytes: stopped before the allocation.
    env.script("let s = \"\"; s.pad(8_000_000_000, \"x\"); print(s.len());")
        .option("--config", cfg.display().to_string())
        .run()
        .assert_code(2)
        .assert_stderr_contains("memory limit (32 MiB) in one operation");
    // A bad size is a config error that says what it wants.
    let bad = env.write_config("[defaults]\nmax_memory = \"lots\"\n");
    env.script("1")
        .option("--config", bad.display().to_string())
        .run()
        .assert_stderr_contains("\"lots\" is not a size");
    env.script("1")
        .option("--max-memory", "huge")
        .run()
        .assert_code(64)
        .assert_stderr_contains("\"huge\" is not a size");
}

#[test]
fn under_the_limit_big_collections_are_fine_and_linear() {
    // 200k pushes and 100k map keys: quadratic re-measuring took minutes
    // here; linear work takes well under a second even on a busy machine.
    let started = Instant::now();
    Env::new()
        .script(
            "let a = []; for i in 0..200000 { a.push(i); } \
             let m = #{}; for i in 0..100000 { m[`k${i}`] = i; } \
             let s = \"\"; for i in 0..50000 { s += \"x\"; } \
             print(`${a.len()} ${m.len()} ${s.len()}`);",
        )
        .run()
        .assert_code(0)
        .assert_stdout("200000 100000 50000\n");
    // Generous (debug build, shared CI machine), but far below the
    // quadratic cost.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// The module values (`pg`, `backup`, `args`, ...) are found by a hook that
/// returns at once for ordinary variables; a script's own variable, a
/// function parameter or a captured variable of the same name still wins.
#[test]
fn variables_named_like_modules_shadow_them_everywhere() {
    Env::new()
        .script(
            r#"
let backup = "mine";
let f = || backup;
fn param(pg) { pg }
fn inner() { type_of(redis) }
fn call_with(x) { x.call() }
print(f.call());
print(param(42));
print(inner());
print(call_with(|| backup + "!"));
let args = 7;
print(args);
"#,
        )
        .run()
        .assert_code(0)
        .assert_stdout("mine\n42\nmodule\nmine!\n7\n");
}
