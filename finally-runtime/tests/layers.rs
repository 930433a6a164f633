//! The runtime's layers, checked: `src/lib.rs` declares the modules bottom up, a layer per
//! paragraph, and a module may use only the modules of its own layer and of the layers below.
//! This reads each module's sources for the paths it names from `crate::` (in `use` items and in
//! code, not in comments) and fails on a path that reaches a layer above the module's, or that
//! goes through the crate root instead of the module that holds the item.
//!
//! ```text
//! cargo test -p finally-runtime --test layers
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The modules `lib.rs` declares, each with its layer (0 at the bottom), in the order declared.
fn layers(lib: &str) -> Vec<(String, usize)> {
    let start = lib
        .find("\nmod ")
        .expect("lib.rs declares its modules with `mod`");
    let mut modules = Vec::new();
    let mut layer = 0;
    let mut in_paragraph = false;
    for line in lib[start..].lines() {
        let line = line.trim();
        if line.starts_with("pub use") || line.starts_with("pub mod") {
            break;
        }
        if line.is_empty() {
            if in_paragraph {
                layer += 1;
                in_paragraph = false;
            }
            continue;
        }
        in_paragraph = true;
        if let Some(name) = line
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'))
        {
            modules.push((name.to_owned(), layer));
        }
    }
    modules
}

/// The source files of module `name`: `name.rs`, or every file under `name/`.
fn files(src: &Path, name: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut found = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `source` without its comments (line comments, doc comments included, and block comments)
/// and without the contents of its string literals, where `crate::` is no path.
fn code_of(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                code.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                code.push('"');
            }
            // A char literal (skipped: `'"'` opens no string), or a lifetime (kept).
            '\'' => {
                let mut ahead = chars.clone();
                match (ahead.next(), ahead.next()) {
                    (Some('\\'), _) => {
                        chars.next();
                        chars.next();
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                        }
                    }
                    (Some(_), Some('\'')) => {
                        chars.next();
                        chars.next();
                    }
                    _ => code.push(c),
                }
            }
            _ => code.push(c),
        }
    }
    code
}

/// The first segment of each path `code` names from `crate::`: `crate::a::b` and
/// `use crate::{a::b, c::{d, e}}` give `a` and `c` (and `a`).
fn roots(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            // `$crate::`, or a longer name ending in `crate`.
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The group's top-level items, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        found.push(identifier(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(identifier(rest));
        }
    }
    found
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn a_module_uses_only_its_own_layer_and_those_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules = layers(&lib);
    assert!(
        modules.len() > 10 && modules.iter().any(|(_, layer)| *layer > 3),
        "lib.rs's layers were not found: {modules:?}"
    );
    let layer_of: BTreeMap<&str, usize> = modules
        .iter()
        .map(|(name, layer)| (name.as_str(), *layer))
        .collect();
    let mut wrong = Vec::new();
    for (module, layer) in &modules {
        for file in files(&src, module) {
            let code = code_of(&fs::read_to_string(&file).unwrap());
            let shown = file.strip_prefix(&src).unwrap().display().to_string();
            for root in roots(&code) {
                match layer_of.get(root.as_str()) {
                    Some(&used) if used > *layer => wrong.push(format!(
                        "{shown} (`{module}`, layer {layer}) uses `{root}`, of layer {used} above"
                    )),
                    Some(_) => {}
                    None => wrong.push(format!(
                        "{shown} (`{module}`) uses `crate::{root}`, which is no module: import it from where it lives"
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers crossed upwards (lib.rs declares them bottom up, a layer per paragraph):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_finds_paths_and_skips_comments() {
    let code = code_of(
        "// crate::comment\nuse crate::{a::b, c::{d, e}};\n/* crate::block */ let x = crate::f::g(\"crate::string\", '\"'); $crate::h",
    );
    assert_eq!(roots(&code), ["a", "c", "f"]);
}
