//! Tidy checks: invariants of the code base, as ordinary tests.

use std::collections::BTreeSet;

use crate::cargo;

/// Crates the domain may depend on directly. Anything else needs a reason, and is probably an
/// adapter's business.
const DOMAIN_ALLOWED: &[&str] = &[
    "anyhow",
    "async-trait",
    "chrono",
    "email_address",
    "secrecy",
    "thiserror",
    "uuid",
];

/// Crates the domain must never depend on, even indirectly: I/O, web, database, crypto and
/// serialisation belong to the adapters and the app.
const DOMAIN_FORBIDDEN: &[&str] = &[
    "sqlx",
    "poem",
    "poem-openapi",
    "argon2",
    "jsonwebtoken",
    "tokio",
    "serde",
    "hyper",
];

/// The crates in `warden-domain`'s normal dependency tree, down to `depth` levels.
fn domain_dependencies(depth: Option<u32>) -> BTreeSet<String> {
    let mut command = cargo();
    command.args([
        "tree",
        "--package",
        "warden-domain",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
        "--all-features",
    ]);
    if let Some(depth) = depth {
        command.args(["--depth", &depth.to_string()]);
    }
    let output = command.output().expect("cannot run cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "warden-domain")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_domain_depends_on_no_io_web_database_crypto_or_serde_crate() {
    let all = domain_dependencies(None);
    let forbidden: Vec<&&str> = DOMAIN_FORBIDDEN
        .iter()
        .filter(|name| all.contains(**name))
        .collect();
    assert!(
        forbidden.is_empty(),
        "warden-domain depends on {forbidden:?}"
    );
}

#[test]
fn the_domain_depends_only_on_allowed_crates() {
    let direct = domain_dependencies(Some(1));
    let unexpected: Vec<&String> = direct
        .iter()
        .filter(|name| !DOMAIN_ALLOWED.contains(&name.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "warden-domain has new dependencies {unexpected:?}: the domain does no I/O; if one of \
         these is really pure, add it to DOMAIN_ALLOWED in xtask/src/tidy.rs"
    );
}

/// The longest a source file under `crates/*/src` may be, tests included: past it, a module
/// wants splitting (a long unit-test module moves to its own file, `foo/tests.rs`).
const MAX_SOURCE_LINES: usize = 500;

/// The looser bound for test suites and the automation: files there hold many similar cases,
/// but past this they want splitting too.
const MAX_SUITE_LINES: usize = 800;

/// Where the size rule applies, as folders under the workspace root (`*` stands for every
/// folder at that level), and the bound there.
const SIZE_RULES: &[(&str, usize)] = &[
    ("crates/*/src", MAX_SOURCE_LINES),
    ("xtask/src", MAX_SUITE_LINES),
    ("crates/*/tests", MAX_SUITE_LINES),
];

/// The folders `pattern` names: itself, or with one `*` each folder at that level.
fn folders(pattern: &str) -> Vec<std::path::PathBuf> {
    let root = crate::root();
    let Some((parent, rest)) = pattern.split_once("/*/") else {
        return vec![root.join(pattern)];
    };
    std::fs::read_dir(root.join(parent))
        .unwrap()
        .map(|entry| entry.unwrap().path().join(rest))
        .filter(|path| path.is_dir())
        .collect()
}

#[test]
fn no_source_file_is_over_its_size_bound() {
    fn walk(dir: &std::path::Path, bound: usize, long: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, bound, long);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > bound {
                    long.push(format!("{} ({lines} lines, over {bound})", path.display()));
                }
            }
        }
    }
    let mut long = Vec::new();
    for (pattern, bound) in SIZE_RULES {
        let found = folders(pattern);
        assert!(!found.is_empty(), "no folder matches {pattern}");
        for folder in found {
            walk(&folder, *bound, &mut long);
        }
    }
    assert!(long.is_empty(), "too long: {long:?}");
}

/// Every license `Cargo.toml` names has its text in the repository, and the OpenAPI document
/// names the same license.
#[test]
fn the_licenses_named_are_the_licenses_shipped() {
    let manifest = std::fs::read_to_string(crate::root().join("Cargo.toml")).unwrap();
    let license = manifest
        .lines()
        .find_map(|line| line.strip_prefix("license = "))
        .expect("Cargo.toml names a license")
        .trim_matches('"');
    assert_eq!(license, "MIT OR Apache-2.0");
    for (file, first_words) in [
        ("LICENSE-MIT", "Permission is hereby granted"),
        ("LICENSE-APACHE", "Apache License"),
    ] {
        let text = std::fs::read_to_string(crate::root().join(file))
            .unwrap_or_else(|_| panic!("{file} is missing"));
        assert!(text.contains(first_words), "{file} is not the license text");
    }
    let document = std::fs::read_to_string(crate::root().join("docs/openapi.json")).unwrap();
    assert!(
        document.contains(&format!(r#""name": "{license}""#)),
        "docs/openapi.json does not name the license"
    );
}
