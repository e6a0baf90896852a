//! Keeps the crate's top-level modules layered: every module of `src/lib.rs`
//! has a rank in `LAYERS`, no code under `src/` (test modules included)
//! names `crate::<module>` of a higher rank, the modules reference each other
//! in no circle, and no source file grows past `MAX_LINES`. Comments and
//! string literals are ignored; `super::` paths are not followed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// Lower ranks are closer to the ground; a module may use modules of its own
/// rank or lower. Names without a module in `src/lib.rs` are ignored.
const LAYERS: &str = "
    0: error, domain, config, crypto, metrics, telemetry, lifecycle, pricing
    1: db, providers, mock_providers
    2: outbox, templates, auth, rate_limit, seed
    3: messages, delivery, callbacks, webhooks
    4: jobs, consumers
    5: actors
    6: state, http
    7: routes
    8: startup
    9: cli
";

const MAX_LINES: usize = 500;

fn rank(module: &str) -> Option<u8> {
    LAYERS.lines().find_map(|layer| {
        let (rank, names) = layer.split_once(':')?;
        let mut names = names.split(',').map(str::trim);
        names
            .any(|n| n == module)
            .then(|| rank.trim().parse().unwrap())
    })
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `mod name;` declarations of `src/lib.rs`.
fn modules() -> BTreeSet<String> {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).expect("read src/lib.rs");
    let lib = blank_comments_and_literals(&lib).replace(';', " ; ");
    let words: Vec<&str> = lib.split_whitespace().collect();
    let decls = words.windows(3).filter(|w| w[0] == "mod" && w[2] == ";");
    decls.map(|w| w[1].to_owned()).collect()
}

/// `(src/relative/path.rs, top-level module, contents)` of every `.rs` file
/// under `src/`; `lib.rs` and `main.rs` come out as modules `lib` and `main`.
fn sources() -> Vec<(String, String, String)> {
    let (mut dirs, mut out) = (vec![src_dir()], Vec::new());
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read a source dir") {
            let path = entry.expect("read a dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src_dir()).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
                let text = fs::read_to_string(&path).expect("read a source file");
                out.push((format!("src/{rel}"), top.to_owned(), text));
            }
        }
    }
    out.sort();
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces comments and string and char literals with spaces, keeping every
/// newline so that line numbers stay put.
fn blank_comments_and_literals(src: &str) -> String {
    let s: Vec<char> = src.chars().collect();
    let find = |from: usize, pat: &[char]| (from..s.len()).find(|&j| s[j..].starts_with(pat));
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < s.len() {
        let start = i;
        let next = s.get(i + 1).copied();
        if s[i] == '/' && matches!(next, Some('/' | '*')) {
            // A line comment, or a block comment (not nested).
            let close: &[char] = if next == Some('/') {
                &['\n']
            } else {
                &['*', '/']
            };
            i = find(i + 2, close).map_or(s.len(), |e| e + close.len());
        } else if s[i] == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(s.len());
        } else if s[i] == '\'' {
            // A char literal ('x', '\'', '\u{..}'), or else a lifetime.
            let end = match next {
                Some('\\') => find(i + 3, &['\'']),
                Some(_) if s.get(i + 2) == Some(&'\'') => Some(i + 2),
                _ => None,
            };
            i = end.map_or(i + 1, |e| e + 1);
        } else if is_ident(s[i]) {
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let hashes = s[i..].iter().take_while(|&&c| c == '#').count();
            if matches!(&*word, "r" | "br" | "cr") && s.get(i + hashes) == Some(&'"') {
                // A raw string: r"..", r#".."#, br".." or cr"..".
                let close: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
                i = find(i + hashes + 1, &close).map_or(s.len(), |e| e + close.len());
            } else {
                out.push_str(&word);
                continue;
            }
        } else {
            out.push(s[i]);
            i += 1;
            continue;
        }
        out.extend(s[start..i].iter().map(|&c| if c == '\n' { c } else { ' ' }));
    }
    out
}

/// Every `crate::<name>` in code as `(line, name)`, with each first segment
/// of a group such as `crate::{db, outbox::Outbox}` on its own line.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let s: Vec<char> = code.chars().collect();
    let line_at = |i: usize| 1 + s[..i].iter().filter(|&&c| c == '\n').count();
    let skip_ws = |i| {
        (i..s.len())
            .find(|&j| !s[j].is_whitespace())
            .unwrap_or(s.len())
    };
    let ident_at = |i: usize| s[i..].iter().take_while(|&&c| is_ident(c)).collect();
    let mut refs = Vec::new();
    for i in 0..s.len() {
        if !s[i..].starts_with(&['c', 'r', 'a', 't', 'e']) || (i > 0 && is_ident(s[i - 1])) {
            continue;
        }
        let mut j = skip_ws(i + 5);
        if !s[j..].starts_with(&[':', ':']) {
            continue;
        }
        j = skip_ws(j + 2);
        if s.get(j) != Some(&'{') {
            refs.push((line_at(j), ident_at(j)));
            continue;
        }
        let (mut depth, mut item_start) = (0, true);
        for (k, &c) in s.iter().enumerate().skip(j) {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => item_start = true,
                c if depth == 1 && item_start && is_ident(c) => {
                    refs.push((line_at(k), ident_at(k)));
                    item_start = false;
                }
                c if !c.is_whitespace() => item_start = false,
                _ => {}
            }
        }
    }
    refs
}

/// `(file, line, from, to)` for every reference between two different
/// top-level modules; `lib.rs` and `main.rs` are exempt.
fn references() -> Vec<(String, usize, String, String)> {
    let modules = modules();
    let mut out = Vec::new();
    for (file, from, text) in sources().into_iter().filter(|s| modules.contains(&s.1)) {
        for (line, to) in crate_refs(&blank_comments_and_literals(&text)) {
            if to != from && modules.contains(&to) {
                out.push((file.clone(), line, from.clone(), to));
            }
        }
    }
    out
}

fn fail_with(what: &str, problems: &[String]) {
    let all = problems.join("\n");
    assert!(problems.is_empty(), "{what} ({}):\n{all}\n", problems.len());
}

#[test]
fn every_top_level_module_has_a_rank() {
    let missing: Vec<String> = modules()
        .into_iter()
        .filter(|m| rank(m).is_none())
        .map(|m| format!("add {m} to the layering table"))
        .collect();
    fail_with("modules without a rank", &missing);
}

#[test]
fn no_module_imports_a_module_above_it() {
    let mut violations = Vec::new();
    for (file, line, from, to) in references() {
        if let (Some(r), Some(s)) = (rank(&from), rank(&to))
            && s > r
        {
            let v = format!("{file}:{line}: {from} (rank {r}) imports crate::{to} (rank {s})");
            violations.push(v);
        }
    }
    fail_with("imports of a higher-ranked module", &violations);
}

/// module -> module it references -> the first place where it does so.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// The shortest circle from `m` back to itself, found breadth first.
fn circle_through<'a>(edges: &'a Edges, m: &'a str) -> Option<Vec<&'a str>> {
    let (mut back, mut queue) = (BTreeMap::new(), VecDeque::from([m]));
    while let Some(n) = queue.pop_front().filter(|_| !back.contains_key(m)) {
        for next in edges.get(n).into_iter().flat_map(|e| e.keys()) {
            let next = next.as_str();
            if !back.contains_key(next) {
                back.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    let mut circle = vec![m, *back.get(m)?];
    while circle[circle.len() - 1] != m {
        circle.push(back[circle[circle.len() - 1]]);
    }
    circle.reverse();
    Some(circle)
}

#[test]
fn the_top_level_modules_form_no_circle() {
    let mut edges = Edges::new();
    for (file, line, from, to) in references() {
        let first = edges.entry(from).or_default().entry(to);
        first.or_insert(format!("{file}:{line}"));
    }
    let (mut circles, mut covered) = (Vec::new(), BTreeSet::new());
    for m in edges.keys() {
        if covered.contains(m.as_str()) {
            continue;
        }
        if let Some(circle) = circle_through(&edges, m) {
            let steps = circle.windows(2).map(|w| {
                let (from, to) = (w[0], w[1]);
                format!("\n  {from} -> {to}: {}", edges[from][to])
            });
            circles.push(circle.join(" -> ") + &steps.collect::<String>());
            covered.extend(circle);
        }
    }
    fail_with("circles between top-level modules", &circles);
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let long: Vec<String> = sources()
        .into_iter()
        .map(|(file, _, text)| (file, text.matches('\n').count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(file, lines)| format!("{file}: {lines} lines (limit {MAX_LINES})"))
        .collect();
    fail_with("files over the line limit", &long);
}
