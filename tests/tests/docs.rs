//! The documentation's links: for README.md and every `docs/*.md`, each Markdown link
//! `[text](target)` whose target is not `http(s):` or `mailto:` names a file that exists
//! (relative to the document's folder), and a `#anchor` in it names a heading of the target
//! Markdown file by its GitHub-style slug. Links inside code (fenced blocks and inline code
//! spans) are not links and are skipped. Also: README.md, the front door, stays at most 300
//! lines.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 300;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md and every Markdown file directly under docs/.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs = vec![root.join("README.md")];
    let mut under: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    under.sort();
    docs.extend(under);
    docs
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn is_fence(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("```") || trimmed.starts_with("~~~")
}

/// The document split into blocks of lines (a blank line or a code fence ends one), with the
/// fenced code left out: inline code spans never cross a block, links never start in a fence.
fn prose_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        if is_fence(line) {
            in_fence = !in_fence;
            blocks.push(std::mem::take(&mut current));
        } else if in_fence {
            continue;
        } else if line.trim().is_empty() {
            blocks.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    blocks.push(current);
    blocks.retain(|block| !block.is_empty());
    blocks
}

/// The block with its inline code spans removed: a run of N backticks opens a span that the
/// next run of exactly N closes; a run without a closer is literal text (as in CommonMark).
fn without_code_spans(block: &str) -> String {
    let chars: Vec<char> = block.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let opener = run_at(i);
        let mut j = i + opener;
        let mut closed_at = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let run = run_at(j);
                if run == opener {
                    closed_at = Some(j + run);
                    break;
                }
                j += run;
            } else {
                j += 1;
            }
        }
        match closed_at {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + opener]);
                i += opener;
            }
        }
    }
    out
}

/// The targets of the document's inline links and images, `[text](target)`, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for block in prose_blocks(text) {
        let prose = without_code_spans(&block);
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let inside = after[..end].trim();
            // `(<target> "title")`: the target is the first word, angle brackets dropped.
            let target = inside.split_whitespace().next().unwrap_or("");
            let target = target.trim_start_matches('<').trim_end_matches('>');
            targets.push(target.to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, every other character that is not
/// a letter, a digit, `-` or `_` dropped (backticks and punctuation included).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (ATX `#` headings outside code fences); a repeated
/// slug gets `-1`, `-2`, ... as GitHub gives it.
fn anchors(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if is_fence(line) {
            in_fence = !in_fence;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        let is_heading = !in_fence && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ');
        if !is_heading {
            continue;
        }
        let base = slug(line[hashes..].trim_end_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while found.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        found.insert(anchor);
    }
    found
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
}

/// What is wrong with one link of `doc`, if anything.
fn check_link(doc: &Path, target: &str) -> Option<String> {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let dest = if file.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().expect("a document has a folder").join(file)
    };
    if !dest.exists() {
        return Some(format!("{target}: {} does not exist", dest.display()));
    }
    let anchor = anchor?;
    if dest.extension().is_none_or(|ext| ext != "md") {
        return Some(format!(
            "{target}: an anchor into a file that is not Markdown"
        ));
    }
    if anchors(&read(&dest)).contains(anchor) {
        None
    } else {
        Some(format!(
            "{target}: no heading of {} has the anchor #{anchor}",
            dest.display()
        ))
    }
}

#[test]
fn every_link_of_the_documentation_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for target in link_targets(&read(&doc)) {
            if is_external(&target) {
                continue;
            }
            checked += 1;
            if let Some(problem) = check_link(&doc, &target) {
                broken.push(format!("{}: {problem}", doc.display()));
            }
        }
    }
    assert!(
        checked > 0,
        "no internal link found: the link finder is broken"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_front_door() {
    let lines = read(&repo_root().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move detail into docs/"
    );
}

#[test]
fn the_link_finder_and_slugs_follow_github() {
    assert_eq!(
        slug("`ebpfstatctl top` on a terminal"),
        "ebpfstatctl-top-on-a-terminal"
    );
    assert_eq!(slug("Reload (SIGHUP)"), "reload-sighup");
    assert_eq!(
        slug("The private socket's limits"),
        "the-private-sockets-limits"
    );
    let text = "# A\n\n## A\n\n```\n# not a heading\n[x](fenced.md)\n```\n\
                See [b](b.md#c) and `[code](code.md)`, ``[`x`](y.md)``.\n";
    assert_eq!(link_targets(text), vec!["b.md#c".to_string()]);
    let found = anchors(text);
    assert!(found.contains("a") && found.contains("a-1") && !found.contains("not-a-heading"));
}
