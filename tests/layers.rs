//! The folders of `src/` are layers: a module may use modules of its own layer or of
//! the layers below it, never above, and no modules use each other in a circle. Read
//! from the source text, so a new `use` that breaks the layering fails here, with the
//! file and the path it named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. The crate root's own files (errors, wording, logging) are layer 0.
const LAYERS: [&str; 7] = ["", "files", "plan", "db", "schema", "lint", "cli"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `src/db/lock.rs` is `db::lock`; `src/files/layout/mod.rs` is `files::layout`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn layer_of(module: &str) -> usize {
    let first = module.split("::").next().unwrap_or("");
    LAYERS.iter().position(|l| *l == first).unwrap_or(0) // a root file: error, text, env, output
}

/// Every `crate::a::b` path in the code (comments aside), cut to the longest prefix
/// that is a module.
fn uses(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if modules.contains(&candidate) {
                found.insert(candidate);
                break;
            }
        }
    }
    found
}

#[test]
fn layers_only_use_layers_below_and_modules_never_form_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = std::fs::read_to_string(file).expect("readable source");
        let mut used = uses(&text, &modules);
        used.remove(&module);
        // A folder's mod.rs declares its children; that is not a use.
        used.retain(|u| !u.starts_with(&format!("{module}::")) || module.is_empty());
        for u in &used {
            if layer_of(u) > layer_of(&module) {
                wrong.push(format!(
                    "{}: `{module}` (layer {}) uses `{u}` (layer {}), a layer above it",
                    file.display(),
                    LAYERS[layer_of(&module)],
                    LAYERS[layer_of(u)]
                ));
            }
        }
        graph.insert(module, used);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Depth-first search for a back edge; the circle is printed module by module.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut circle = stack[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                0 => {
                    if let Some(circle) = visit(next, graph, state, stack) {
                        return Some(circle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        if state.get(module).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(circle) = visit(module, &graph, &mut state, &mut stack) {
                panic!(
                    "modules use each other in a circle: {}",
                    circle.join(" -> ")
                );
            }
        }
    }
}
