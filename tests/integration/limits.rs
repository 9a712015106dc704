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

/// The module values (`pg`, `backup`, `args`, ...) are constants of a global
/// module, with a variable hook on top when the script has closures (which
/// capture from the scope only); a script's own variable, a function
/// parameter or a captured variable of the same name still wins.
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

/// Without a closure there is no variable hook: module values are found in
/// functions and at the top level, and a parameter or a variable of the
/// same name still wins.
#[test]
fn module_values_without_the_hook_shadow_the_same_way() {
    Env::new()
        .script(
            r#"
let backup = "mine";
fn param(pg) { pg }
fn inner() { type_of(redis) }
print(backup);
print(param(42));
print(inner());
print(type_of(pg));
let args = 7;
print(args);
"#,
        )
        .run()
        .assert_code(0)
        .assert_stdout("mine\n42\nmodule\nmodule\n7\n");
}

/// A closure captures the module values it names, at the top level, in a
/// function, and in an imported module the script calls (which is compiled
/// only when the import runs).
#[test]
fn closures_capture_module_values_in_functions_and_imports() {
    let env = Env::new();
    env.write(
        "lib/caps.rhai",
        "fn kinds() { let f = |x| type_of(redis); f.call(1) }\n",
    );
    // The script itself has no closure: the import alone keeps the hook.
    env.script("import \"lib/caps\" as caps;\nprint(caps::kinds());\n")
        .run()
        .assert_code(0)
        .assert_stdout("module\n");
    env.script("fn h() { let f = |u| type_of(pg); f.call(1) }\nprint(h());\n")
        .run()
        .assert_code(0)
        .assert_stdout("module\n");
    env.script("let r = parallel([1, 2], |u| type_of(redis));\nprint(r[1].value);\n")
        .run()
        .assert_code(0)
        .assert_stdout("module\n");
}
