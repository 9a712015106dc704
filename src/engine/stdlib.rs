//! Rhai modules shipped inside the binary, importable by bare name:
//! `import "checks" as checks;`.

pub const STDLIB: &[(&str, &str)] = &[
    ("checks", include_str!("../../stdlib/checks.rhai")),
    ("fmt", include_str!("../../stdlib/fmt.rhai")),
    ("incident", include_str!("../../stdlib/incident.rhai")),
];

pub fn get(name: &str) -> Option<&'static str> {
    STDLIB
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}
