//! The guide set as the spec's "Documentation" section promises it: every
//! guide exists, is compiled as doctests, has a runnable example, and every
//! relative link between the pages (anchors included) lands somewhere.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The spec's guide table, with the example that demonstrates each guide.
const GUIDES: [(&str, Option<&str>); 10] = [
    ("cookbook.md", None),
    ("commands.md", Some("commands")),
    ("process-groups.md", Some("process_groups")),
    ("streaming.md", Some("streaming")),
    ("pipelines.md", Some("pipelines")),
    (
        "timeouts-and-cancellation.md",
        Some("timeouts_and_cancellation"),
    ),
    ("supervision.md", Some("supervision")),
    ("testing.md", Some("testing")),
    ("privileges.md", Some("privileges")),
    ("architecture.md", None),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown page, ignoring headings inside code fences.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_fence = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every `](target)` link of a page, outside code fences.
fn links(text: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_guide_exists_and_is_compiled_as_doctests() {
    let doctests = read(&root().join("src/doctests.rs"));
    for (page, _) in GUIDES {
        assert!(
            root().join("docs").join(page).is_file(),
            "docs/{page} is missing"
        );
        assert!(
            doctests.contains(&format!("include_str!(\"../docs/{page}\")")),
            "docs/{page} is not compiled by src/doctests.rs"
        );
    }
}

#[test]
fn every_page_in_docs_is_compiled_as_doctests() {
    let doctests = read(&root().join("src/doctests.rs"));
    for entry in fs::read_dir(root().join("docs")).expect("docs/ exists") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        let has_rust = read(&root().join("docs").join(&name)).contains("```rust");
        if name.ends_with(".md") && has_rust {
            assert!(
                doctests.contains(&format!("include_str!(\"../docs/{name}\")")),
                "docs/{name} has Rust snippets that src/doctests.rs does not compile"
            );
        }
    }
}

#[test]
fn every_guide_with_an_example_has_its_program() {
    for (page, example) in GUIDES {
        if let Some(example) = example {
            let file = root().join("examples").join(format!("{example}.rs"));
            assert!(file.is_file(), "{page}: examples/{example}.rs is missing");
        }
    }
}

#[test]
fn relative_links_between_pages_resolve() {
    let mut pages: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.push(root().join("README.md"));
    let mut checked = 0;
    for page in &pages {
        let text = read(page);
        let dir = page.parent().expect("a page lives in a directory");
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            assert!(
                target.exists(),
                "{}: link {link} points nowhere",
                page.display()
            );
            if !anchor.is_empty() {
                assert!(
                    anchors(&read(&target)).contains(anchor),
                    "{}: link {link} names a heading that does not exist",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 40,
        "only {checked} links found: the link scanner is broken"
    );
}

#[test]
fn the_cookbook_links_every_recipe_to_a_guide() {
    let text = read(&root().join("docs/cookbook.md"));
    let recipes: Vec<&str> = text.split("\n### ").skip(1).collect();
    assert!(recipes.len() >= 30, "only {} recipes", recipes.len());
    for recipe in recipes {
        let title = recipe.lines().next().unwrap_or("");
        assert!(
            links(recipe).iter().any(|l| l.contains(".md")),
            "the recipe {title:?} links to no guide"
        );
    }
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(
        slug(" Capping a group's resources"),
        "capping-a-groups-resources"
    );
    assert_eq!(
        slug(" `CliClient` and `cli_client!`"),
        "cliclient-and-cli_client"
    );
    assert_eq!(
        slug(" Streaming & interactive I/O"),
        "streaming--interactive-io"
    );
}

#[test]
fn the_index_links_every_page() {
    let index = links(&read(&root().join("docs/README.md")));
    for entry in fs::read_dir(root().join("docs")).expect("docs/ exists") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if name.ends_with(".md") && name != "README.md" {
            assert!(
                index
                    .iter()
                    .any(|l| l.split('#').next() == Some(name.as_str())),
                "docs/README.md does not link {name}"
            );
        }
    }
}
