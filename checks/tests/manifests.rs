//! The README's tables and the published crates' packaging shape, checked against the
//! manifests (`cargo metadata --no-deps`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("checks/ is inside the workspace")
        .to_path_buf()
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(workspace_root().join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn packages(metadata: &Value) -> Vec<&Value> {
    metadata["packages"]
        .as_array()
        .expect("cargo metadata has packages")
        .iter()
        .collect()
}

fn name(package: &Value) -> &str {
    package["name"].as_str().expect("a package has a name")
}

/// The workspace packages that may be published (no `publish = false`).
fn published(metadata: &Value) -> BTreeMap<String, &Value> {
    packages(metadata)
        .into_iter()
        .filter(|p| p["publish"] != Value::Array(Vec::new()))
        .map(|p| (name(p).to_owned(), p))
        .collect()
}

fn readme() -> String {
    let path = workspace_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Body rows of the Markdown table between `<!-- {marker}:start -->` and
/// `<!-- {marker}:end -->`, cells trimmed and without backticks.
fn marked_table(text: &str, marker: &str) -> Vec<Vec<String>> {
    let start = format!("<!-- {marker}:start -->");
    let end = format!("<!-- {marker}:end -->");
    let from = text
        .find(&start)
        .unwrap_or_else(|| panic!("README.md has no `{start}` marker"))
        + start.len();
    let to = from
        + text[from..]
            .find(&end)
            .unwrap_or_else(|| panic!("README.md has no `{end}` marker after `{start}`"));
    let rows: Vec<Vec<String>> = text[from..to]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('`', ""))
                .collect()
        })
        .collect();
    assert!(
        !rows.is_empty(),
        "the `{marker}` table in README.md has no rows"
    );
    rows
}

/// What a crate-without-features row says in the Feature column.
const NO_FEATURES: &str = "(none)";

#[test]
fn readme_feature_table_lists_exactly_the_features_of_every_published_crate() {
    let metadata = metadata();
    let published = published(&metadata);

    // From the manifests: (crate, feature, on by default?).
    let expected: BTreeSet<(String, String, String)> = published
        .iter()
        .flat_map(|(crate_name, package)| {
            feature_rows(package)
                .into_iter()
                .map(move |(feature, default)| (crate_name.clone(), feature, default))
        })
        .collect();

    // From the README: | Crate | Feature | Default | What it enables |
    let mut documented = BTreeSet::new();
    for row in marked_table(&readme(), "feature-flags") {
        assert_eq!(row.len(), 4, "feature table row {row:?} needs 4 cells");
        let (crate_name, feature, default, enables) = (&row[0], &row[1], &row[2], &row[3]);
        if feature != NO_FEATURES {
            assert!(
                default == "yes" || default == "no",
                "feature table row {row:?}: Default must be yes or no"
            );
            assert!(
                !enables.is_empty(),
                "feature table row {row:?}: say what the feature enables"
            );
        }
        assert!(
            documented.insert((crate_name.clone(), feature.clone(), default.clone())),
            "feature table row {row:?} appears twice"
        );
    }

    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's feature table (between the feature-flags markers) does not match the \
         manifests.\n  in a Cargo.toml but not in the table (crate, feature, default): \
         {missing:?}\n  in the table but not in any published crate's [features]: {extra:?}\n\
         A crate without features gets one row with Feature `{NO_FEATURES}` and an empty \
         Default."
    );
}

#[test]
fn readme_msrv_table_matches_every_published_crates_rust_version() {
    let metadata = metadata();
    let expected: BTreeMap<String, String> = published(&metadata)
        .into_iter()
        .map(|(n, p)| {
            let rv = p["rust_version"]
                .as_str()
                .unwrap_or_else(|| panic!("{n} declares no rust-version"))
                .to_owned();
            (n, rv)
        })
        .collect();

    // From the README: | Crate | rust-version | What sets it |
    let mut documented = BTreeMap::new();
    for row in marked_table(&readme(), "msrv") {
        assert_eq!(row.len(), 3, "rust-version table row {row:?} needs 3 cells");
        assert!(
            !row[2].is_empty(),
            "rust-version table row {row:?}: say what sets the minimum"
        );
        assert!(
            documented.insert(row[0].clone(), row[1].clone()).is_none(),
            "rust-version table lists {} twice",
            row[0]
        );
    }
    assert_eq!(
        documented, expected,
        "README.md's rust-version table (between the msrv markers) must list every published \
         crate with the rust-version of its Cargo.toml (left: README, right: manifests)"
    );
}

/// Workspace crates that `package` depends on through normal or build dependencies,
/// directly or through other workspace crates.
fn workspace_dependencies_of<'a>(
    package: &'a Value,
    by_name: &BTreeMap<&str, &'a Value>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package];
    while let Some(p) = todo.pop() {
        for dep in p["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(d) = by_name.get(dep_name)
                && seen.insert(dep_name.to_owned())
            {
                todo.push(d);
            }
        }
    }
    seen
}

#[test]
fn published_crates_have_no_versioned_dev_dependency_cycle_and_version_every_normal_dependency() {
    let metadata = metadata();
    let all = packages(&metadata);
    let by_name: BTreeMap<&str, &Value> = all.iter().map(|p| (name(p), *p)).collect();
    let mut problems = Vec::new();

    for (crate_name, package) in published(&metadata) {
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let Some(dep_package) = by_name.get(dep_name) else {
                continue; // from a registry
            };
            let req = dep["req"].as_str().unwrap_or_default();
            let kind = dep["kind"].as_str().unwrap_or("normal");
            if kind == "dev" {
                // A dev-dependency with a version is kept in the packaged manifest; if that
                // crate depends on this one, neither can be packaged or published first.
                if req != "*"
                    && workspace_dependencies_of(dep_package, &by_name).contains(&crate_name)
                {
                    problems.push(format!(
                        "{crate_name}: dev-dependency {dep_name} carries a version ({req}) but \
                         {dep_name} depends on {crate_name}; make it path-only \
                         (`{dep_name} = {{ path = \"...\" }}`) so `cargo package` drops it"
                    ));
                }
            } else if req == "*" {
                problems.push(format!(
                    "{crate_name}: {kind} dependency {dep_name} has no version; the registry \
                     needs one (use `{dep_name}.workspace = true`)"
                ));
            } else if dep_package["publish"] == Value::Array(Vec::new()) {
                problems.push(format!(
                    "{crate_name}: depends on {dep_name}, which is publish = false"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn examples_are_not_published_and_published_crates_have_registry_metadata() {
    let metadata = metadata();
    let examples_dir = workspace_root().join("examples");
    let mut problems = Vec::new();
    for package in packages(&metadata) {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if manifest.starts_with(&examples_dir) && package["publish"] != Value::Array(Vec::new()) {
            problems.push(format!(
                "{}: an example must be `publish = false`",
                name(package)
            ));
        }
    }
    for (crate_name, package) in published(&metadata) {
        for field in ["description", "license", "rust_version"] {
            if package[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{crate_name}: no {field}"));
            }
        }
        let docs_rs = &package["metadata"]["docs"]["rs"];
        if docs_rs["all-features"] != Value::Bool(true) {
            problems.push(format!(
                "{crate_name}: [package.metadata.docs.rs] needs `all-features = true`"
            ));
        }
        // `--cfg docsrs` lets the crate mark feature-gated items on docs.rs only.
        let rustdoc_args: Vec<&str> = docs_rs["rustdoc-args"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !rustdoc_args.windows(2).any(|w| w == ["--cfg", "docsrs"]) {
            problems.push(format!(
                "{crate_name}: [package.metadata.docs.rs] needs \
                 `rustdoc-args = [\"--cfg\", \"docsrs\"]`"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The crate's features as (feature, "yes"/"no" for on by default), or one
/// (`NO_FEATURES`, "") row for a crate without any.
fn feature_rows(package: &Value) -> BTreeSet<(String, String)> {
    let features = package["features"].as_object().expect("features is a map");
    let defaults: BTreeSet<&str> = features
        .get("default")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut rows: BTreeSet<(String, String)> = features
        .keys()
        .filter(|f| *f != "default")
        .map(|f| {
            let default = if defaults.contains(f.as_str()) {
                "yes"
            } else {
                "no"
            };
            (f.clone(), default.to_owned())
        })
        .collect();
    if rows.is_empty() {
        rows.insert((NO_FEATURES.to_owned(), String::new()));
    }
    rows
}

#[test]
fn every_published_crate_has_a_readme_that_is_its_crate_docs_and_lists_its_features() {
    let metadata = metadata();
    let mut problems = Vec::new();
    for (crate_name, package) in published(&metadata) {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().expect("a manifest is in a directory");
        let Some(readme_name) = package["readme"].as_str() else {
            problems.push(format!("{crate_name}: no README.md (the registry page)"));
            continue;
        };
        let readme_path = dir.join(readme_name);
        let Ok(readme) = std::fs::read_to_string(&readme_path) else {
            problems.push(format!(
                "{crate_name}: cannot read {}",
                readme_path.display()
            ));
            continue;
        };
        if !readme.contains("```rust") {
            problems.push(format!(
                "{crate_name}: {readme_name} has no ```rust example (run as a doctest)"
            ));
        }

        // The README is the crate docs' front page, so its example runs as a doctest.
        let lib = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "lib"))
            });
        match lib.and_then(|t| t["src_path"].as_str()) {
            None => problems.push(format!("{crate_name}: no library target")),
            Some(src) => {
                let text = std::fs::read_to_string(src).unwrap_or_default();
                // `#![doc = include_str!("../README.md")]`, or, for a README whose example
                // needs a feature, `#![cfg_attr(feature = "..", doc = include_str!(..))]`.
                let include = format!("doc = include_str!(\"../{readme_name}\")");
                let first = text.lines().next().map(str::trim).unwrap_or_default();
                if !(first.starts_with("#![") && first.contains(&include)) {
                    problems.push(format!(
                        "{crate_name}: {src} must start with `#![{include}]` (or a \
                         `#![cfg_attr(feature = \"..\", {include})]`)"
                    ));
                }
            }
        }

        // The README states the crate's minimum Rust version: the one its manifest declares.
        let rust_version = package["rust_version"].as_str().unwrap_or_default();
        let msrv_paragraph = readme
            .split_once("## Minimum supported Rust version")
            .map(|(_, rest)| rest.trim_start());
        if msrv_paragraph.is_none_or(|p| !p.starts_with(&format!("{rust_version} "))) {
            problems.push(format!(
                "{crate_name}: {readme_name} needs a `## Minimum supported Rust version` \
                 section whose text starts with the declared rust-version {rust_version}"
            ));
        }

        // | Feature | Default | What it enables |
        if !readme.contains("<!-- feature-flags:start -->") {
            problems.push(format!(
                "{crate_name}: {readme_name} has no feature table between \
                 <!-- feature-flags:start --> and <!-- feature-flags:end -->"
            ));
            continue;
        }
        let documented: BTreeSet<(String, String)> = marked_table(&readme, "feature-flags")
            .into_iter()
            .map(|row| {
                let cell = |i: usize| row.get(i).cloned().unwrap_or_default();
                (cell(0), cell(1))
            })
            .collect();
        let expected = feature_rows(package);
        if documented != expected {
            problems.push(format!(
                "{crate_name}: {readme_name}'s feature table lists {documented:?}, the manifest \
                 has {expected:?} (feature, default)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
