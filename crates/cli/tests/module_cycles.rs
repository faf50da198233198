//! No crate of the workspace has modules that import each other in a cycle.
//!
//! Every `crates/*/src/**/*.rs` file is a module (`src/lib.rs` or `src/main.rs` the crate's root,
//! `src/a/mod.rs` and `src/a.rs` the module `a`, `src/a/b.rs` the module `a::b`). A module depends
//! on another when its code names that module through a `crate::` path: in a `use crate::…`
//! statement (grouped and multi-line forms included) or inline (`crate::a::b::Item`, and the
//! `"crate::a::f"` a serde attribute names). A path resolves to the longest prefix that is a file
//! module: `crate::a::b::Item` is the module `a::b` if `src/a/b.rs` or `src/a/b/mod.rs` exists,
//! else `a`.
//!
//! Left out on purpose, so that the check finds dependencies that can be cut rather than the
//! ordinary shape of a module tree: `super::` and `self::` paths and relative paths (a child naming
//! its parent's items, a parent naming its children), `mod` declarations, re-exports (`pub use`,
//! `pub(crate) use`, …), `pub(in crate::a)` visibilities, `$crate` in macros, comments and doc
//! comments, and every item under `#[cfg(test)]` (a `mod tests { … }`, a test-only helper, the
//! file of a `#[cfg(test)] mod tests;`). A module's use of itself is no edge.
//!
//! When the graph of a crate has strongly connected components of more than one module, the test
//! fails and names, for each, its modules, one shortest cycle through it (with where each step of it
//! is written, so it is clear what to cut), and every edge inside it.
//!
//! A crate with both `src/lib.rs` and `src/main.rs` is checked through its library only (the
//! binary's `crate::` is another crate), and `src/bin/` is skipped for the same reason.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn no_crate_of_the_workspace_has_a_cycle_between_its_modules() {
    let crates_directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut crate_directories: Vec<PathBuf> = fs::read_dir(&crates_directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("src").is_dir())
        .collect();
    crate_directories.sort();
    assert!(
        crate_directories.len() >= 2,
        "no crates found under {}",
        crates_directory.display()
    );

    let mut report = String::new();
    for crate_directory in &crate_directories {
        let name = crate_directory.file_name().unwrap().to_string_lossy();
        let source_directory = crate_directory.join("src");
        let files = source_files(&source_directory);
        assert!(
            !files.is_empty(),
            "no source files under {}",
            source_directory.display()
        );
        let cycles = find_cycles(&files);
        if !cycles.is_empty() {
            let location = format!("crates/{name}/src/");
            report.push_str(&describe(&name, &location, &cycles));
        }
    }
    assert!(
        report.is_empty(),
        "modules that import each other in a cycle:\n\n{report}"
    );
}

/// The `.rs` files under `source_directory`, as (path relative to it with `/`, text).
fn source_files(source_directory: &Path) -> Vec<(String, String)> {
    fn walk(directory: &Path, relative: &str, files: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let relative_path = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            if path.is_dir() {
                if relative_path != "bin" {
                    walk(&path, &relative_path, files);
                }
            } else if name.ends_with(".rs") {
                let text = fs::read_to_string(&path).unwrap();
                files.push((relative_path, text));
            }
        }
    }
    let mut files = Vec::new();
    walk(source_directory, "", &mut files);
    if files.iter().any(|(path, _)| path == "lib.rs") {
        files.retain(|(path, _)| path != "main.rs");
    }
    files
}

/// A crate's module, its path joined with `::`; the root is `""`.
type Module = String;

fn display(module: &str) -> &str {
    if module.is_empty() {
        "crate"
    } else {
        module
    }
}

/// The module a file under `src/` is: `lib.rs` and `main.rs` the root, `a/mod.rs` and `a.rs` `a`.
fn module_of_file(relative_path: &str) -> Option<Module> {
    let without_extension = relative_path.strip_suffix(".rs")?;
    if without_extension == "lib" || without_extension == "main" {
        return Some(String::new());
    }
    let without_mod = without_extension
        .strip_suffix("/mod")
        .unwrap_or(without_extension);
    Some(without_mod.replace('/', "::"))
}

/// Each module's dependencies, with where each is first written.
type Edges = BTreeMap<Module, BTreeMap<Module, Evidence>>;

/// Where one module names another: the first place, as the file, its line and the path written.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Evidence {
    file: String,
    line: usize,
    path: String,
}

/// A `crate::` path found in a file: its segments after `crate`, and its line.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug)]
struct Cycle {
    /// Sorted.
    modules: Vec<Module>,
    /// A shortest cycle through the component, its first module repeated at the end.
    example: Vec<Module>,
    /// Every edge inside the component, with the first place it is written.
    edges: Vec<(Module, Module, Evidence)>,
}

/// The strongly connected components of more than one module among `files`' modules.
fn find_cycles(files: &[(String, String)]) -> Vec<Cycle> {
    // The modules and what each file says, with test-only items blanked out.
    let mut cleaned_files: Vec<(String, Module, String)> = Vec::new();
    let mut test_only: BTreeSet<Module> = BTreeSet::new();
    for (path, text) in files {
        let Some(module) = module_of_file(path) else {
            continue;
        };
        let (cleaned, test_modules) = without_test_items(&without_comments_and_literals(text));
        for child in test_modules {
            test_only.insert(join(&module, &child));
        }
        cleaned_files.push((path.clone(), module, cleaned));
    }
    let is_test_only = |module: &str| {
        test_only
            .iter()
            .any(|test| module == test || module.starts_with(&format!("{test}::")))
    };
    cleaned_files.retain(|(_, module, _)| !is_test_only(module));
    let modules: BTreeSet<Module> = cleaned_files
        .iter()
        .map(|(_, module, _)| module.clone())
        .collect();

    let mut edges: Edges = modules
        .iter()
        .map(|module| (module.clone(), BTreeMap::new()))
        .collect();
    for (path, module, cleaned) in &cleaned_files {
        for reference in crate_references(cleaned) {
            let target = resolve(&reference.segments, &modules);
            if target == *module {
                continue;
            }
            let evidence = Evidence {
                file: path.clone(),
                line: reference.line,
                path: format!("crate::{}", reference.segments.join("::")),
            };
            let targets = edges.get_mut(module).unwrap();
            match targets.get(&target) {
                Some(existing) if existing.line <= evidence.line => {}
                _ => {
                    targets.insert(target, evidence);
                }
            }
        }
    }

    let mut cycles = Vec::new();
    for component in strongly_connected_components(&edges) {
        if component.len() < 2 {
            continue;
        }
        let members: BTreeSet<&Module> = component.iter().collect();
        let mut inside = Vec::new();
        for from in &component {
            for (to, evidence) in &edges[from] {
                if members.contains(to) {
                    inside.push((from.clone(), to.clone(), evidence.clone()));
                }
            }
        }
        let example = shortest_cycle(&component, &edges);
        cycles.push(Cycle {
            modules: component,
            example,
            edges: inside,
        });
    }
    cycles.sort_by(|a, b| a.modules.cmp(&b.modules));
    cycles
}

fn join(module: &str, child: &str) -> Module {
    if module.is_empty() {
        child.to_owned()
    } else {
        format!("{module}::{child}")
    }
}

/// The longest prefix of `segments` that is a file module (the root if none is).
fn resolve(segments: &[String], modules: &BTreeSet<Module>) -> Module {
    (0..=segments.len())
        .rev()
        .map(|length| segments[..length].join("::"))
        .find(|candidate| modules.contains(candidate))
        .unwrap_or_default()
}

fn is_identifier_character(character: char) -> bool {
    character.is_alphanumeric() || character == '_'
}

/// `source` with comments, doc comments, character literals and string literals blanked out
/// (newlines kept, so lines still count), except a string that is only a `crate::` path (as in
/// `#[serde(with = "crate::a::f")]`), which stays.
fn without_comments_and_literals(source: &str) -> String {
    fn blank(characters: &[char], output: &mut String) {
        for &character in characters {
            output.push(if character == '\n' { '\n' } else { ' ' });
        }
    }
    let characters: Vec<char> = source.chars().collect();
    let at = |index: usize| characters.get(index).copied();
    let mut output = String::with_capacity(source.len());
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        let previous_is_identifier = index > 0 && is_identifier_character(characters[index - 1]);
        if character == '/' && at(index + 1) == Some('/') {
            let end = (index..characters.len())
                .find(|&end| characters[end] == '\n')
                .unwrap_or(characters.len());
            blank(&characters[index..end], &mut output);
            index = end;
        } else if character == '/' && at(index + 1) == Some('*') {
            let mut depth = 0;
            let mut end = index;
            while end < characters.len() {
                if characters[end] == '/' && at(end + 1) == Some('*') {
                    depth += 1;
                    end += 2;
                } else if characters[end] == '*' && at(end + 1) == Some('/') {
                    depth -= 1;
                    end += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    end += 1;
                }
            }
            let end = end.min(characters.len());
            blank(&characters[index..end], &mut output);
            index = end;
        } else if character == 'r'
            && (!previous_is_identifier
                || (index > 0
                    && characters[index - 1] == 'b'
                    && (index < 2 || !is_identifier_character(characters[index - 2]))))
            && {
                let hashes = (index + 1..characters.len())
                    .take_while(|&i| characters[i] == '#')
                    .count();
                at(index + 1 + hashes) == Some('"')
            }
        {
            // A raw string: r"…", r#"…"#, br"…".
            let hashes = (index + 1..characters.len())
                .take_while(|&i| characters[i] == '#')
                .count();
            let content_start = index + 2 + hashes;
            let mut end = content_start;
            while end < characters.len() {
                if characters[end] == '"'
                    && (1..=hashes).all(|offset| at(end + offset) == Some('#'))
                {
                    break;
                }
                end += 1;
            }
            let stop = (end + 1 + hashes).min(characters.len());
            blank(&characters[index..stop], &mut output);
            index = stop;
        } else if character == '"' {
            let mut end = index + 1;
            while end < characters.len() && characters[end] != '"' {
                end += if characters[end] == '\\' { 2 } else { 1 };
            }
            let end = end.min(characters.len());
            let content: String = characters[index + 1..end].iter().collect();
            let is_crate_path = content.starts_with("crate::")
                && content
                    .chars()
                    .all(|character| is_identifier_character(character) || character == ':');
            if is_crate_path {
                output.push('"');
                output.push_str(&content);
                output.push('"');
            } else {
                blank(
                    &characters[index..(end + 1).min(characters.len())],
                    &mut output,
                );
            }
            index = end + 1;
        } else if character == '\'' && at(index + 1) == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{7f}'.
            let mut end = index + 3;
            while end < characters.len() && characters[end] != '\'' {
                end += 1;
            }
            let end = (end + 1).min(characters.len());
            blank(&characters[index..end], &mut output);
            index = end;
        } else if character == '\'' && at(index + 2) == Some('\'') {
            blank(&characters[index..index + 3], &mut output);
            index += 3;
        } else {
            output.push(character);
            index += 1;
        }
    }
    output
}

/// `cleaned` with every item under `#[cfg(test)]` blanked out, and the names of the modules it
/// declares as files under `#[cfg(test)]` (`#[cfg(test)] mod tests;`).
fn without_test_items(cleaned: &str) -> (String, Vec<String>) {
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let bytes = cleaned.as_bytes();
    let mut output = String::with_capacity(cleaned.len());
    let mut test_modules = Vec::new();
    let mut position = 0;
    while let Some(found) = cleaned[position..].find(ATTRIBUTE) {
        let start = position + found;
        output.push_str(&cleaned[position..start]);
        let mut index = start + ATTRIBUTE.len();
        // Further attributes of the same item.
        loop {
            while index < bytes.len() && bytes[index].is_ascii_whitespace() {
                index += 1;
            }
            if cleaned[index..].starts_with("#[") {
                index = matching_close(bytes, index + 1, b'[', b']');
            } else {
                break;
            }
        }
        let item_start = index;
        let first = cleaned[item_start..]
            .find(['{', ';'])
            .map_or(cleaned.len(), |offset| item_start + offset);
        let end = if bytes.get(first) == Some(&b'{') {
            matching_close(bytes, first, b'{', b'}')
        } else {
            let words: Vec<&str> = cleaned[item_start..first].split_whitespace().collect();
            if let [.., "mod", name] = words.as_slice() {
                test_modules.push((*name).to_owned());
            }
            (first + 1).min(cleaned.len())
        };
        for character in cleaned[start..end].chars() {
            output.push(if character == '\n' { '\n' } else { ' ' });
        }
        position = end;
    }
    output.push_str(&cleaned[position..]);
    (output, test_modules)
}

/// The index just past the bracket that closes the one at `open_index`.
fn matching_close(bytes: &[u8], open_index: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    for (index, &byte) in bytes.iter().enumerate().skip(open_index) {
        if byte == open {
            depth += 1;
        } else if byte == close {
            depth -= 1;
            if depth == 0 {
                return index + 1;
            }
        }
    }
    bytes.len()
}

fn line_of(text: &str, byte_index: usize) -> usize {
    text[..byte_index].matches('\n').count() + 1
}

/// The `crate::` paths a cleaned file names: in `use` statements that are not re-exports, and
/// inline. Paths in re-exports and in `pub(in crate::…)` are left out.
fn crate_references(cleaned: &str) -> Vec<Reference> {
    let bytes = cleaned.as_bytes();
    let mut references = Vec::new();
    // `use` statements, blanked out of the text scanned for inline paths afterwards.
    let mut rest = String::with_capacity(cleaned.len());
    let mut position = 0;
    let mut search = 0;
    while let Some(found) = cleaned[search..].find("use") {
        let start = search + found;
        let after = start + 3;
        let is_keyword = (start == 0 || !is_identifier_character(char::from(bytes[start - 1])))
            && bytes
                .get(after)
                .is_some_and(|byte| byte.is_ascii_whitespace());
        if !is_keyword {
            search = after;
            continue;
        }
        let end = cleaned[after..]
            .find(';')
            .map_or(cleaned.len(), |offset| after + offset);
        if !is_re_export(&cleaned[..start]) {
            let line = line_of(cleaned, start);
            for path in use_tree_paths(&cleaned[after..end]) {
                if let Some((first, segments)) = path.split_first() {
                    if first == "crate" {
                        references.push(Reference {
                            segments: segments.to_vec(),
                            line,
                        });
                    }
                }
            }
        }
        rest.push_str(&cleaned[position..start]);
        for character in cleaned[start..end].chars() {
            rest.push(if character == '\n' { '\n' } else { ' ' });
        }
        position = end;
        search = end;
    }
    rest.push_str(&cleaned[position..]);

    let rest_bytes = rest.as_bytes();
    let mut search = 0;
    while let Some(found) = rest[search..].find("crate::") {
        let start = search + found;
        search = start + "crate::".len();
        let previous = start
            .checked_sub(1)
            .map(|index| char::from(rest_bytes[index]));
        if previous.is_some_and(|character| {
            is_identifier_character(character) || character == '$' || character == ':'
        }) {
            continue;
        }
        // `pub(in crate::a)` names where an item is seen, not what it uses.
        let before = rest[..start].trim_end();
        if before
            .strip_suffix("in")
            .is_some_and(|before| before.trim_end().ends_with('('))
        {
            continue;
        }
        let mut segments = Vec::new();
        let mut index = search;
        loop {
            let length = rest[index..]
                .find(|character: char| !is_identifier_character(character))
                .unwrap_or(rest.len() - index);
            if length == 0 {
                break;
            }
            segments.push(rest[index..index + length].to_owned());
            index += length;
            let continues = rest[index..].starts_with("::")
                && rest[index + 2..]
                    .chars()
                    .next()
                    .is_some_and(is_identifier_character);
            if !continues {
                break;
            }
            index += 2;
        }
        if !segments.is_empty() {
            references.push(Reference {
                segments,
                line: line_of(&rest, start),
            });
        }
    }
    references
}

/// Whether the `use` after `before` is a re-export: `pub use`, `pub(crate) use`, ….
fn is_re_export(before: &str) -> bool {
    let before = before.trim_end();
    let before = match before.strip_suffix(')') {
        Some(inside) => match inside.rfind('(') {
            Some(open) => inside[..open].trim_end(),
            None => return false,
        },
        None => before,
    };
    before.ends_with("pub")
        && !before[..before.len() - 3]
            .chars()
            .next_back()
            .is_some_and(is_identifier_character)
}

/// The paths a use tree names: `crate::{a::b, c::{self, d as e}, f::*}` is `crate::a::b`,
/// `crate::c`, `crate::c::d`, `crate::f`.
fn use_tree_paths(tree: &str) -> Vec<Vec<String>> {
    let mut tokens: Vec<String> = Vec::new();
    let mut characters = tree.chars().peekable();
    while let Some(&character) = characters.peek() {
        if is_identifier_character(character) {
            let mut word = String::new();
            while let Some(&next) = characters.peek() {
                if !is_identifier_character(next) {
                    break;
                }
                word.push(next);
                characters.next();
            }
            tokens.push(word);
        } else {
            if matches!(character, '{' | '}' | ',' | '*') {
                tokens.push(character.to_string());
            }
            // `::` separates segments, which the tokens already do; whitespace is nothing.
            characters.next();
        }
    }

    fn tree_at(
        tokens: &[String],
        mut index: usize,
        prefix: &[String],
        paths: &mut Vec<Vec<String>>,
    ) -> usize {
        let mut path = prefix.to_vec();
        while let Some(token) = tokens.get(index) {
            match token.as_str() {
                "{" => {
                    index += 1;
                    while let Some(token) = tokens.get(index) {
                        match token.as_str() {
                            "}" => {
                                index += 1;
                                break;
                            }
                            "," => index += 1,
                            _ => index = tree_at(tokens, index, &path, paths),
                        }
                    }
                    return index;
                }
                "}" | "," => break,
                "*" | "self" => index += 1,
                "as" => index += 2,
                segment => {
                    path.push(segment.to_owned());
                    index += 1;
                }
            }
        }
        paths.push(path);
        index
    }

    let mut paths = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        index = tree_at(&tokens, index, &[], &mut paths);
        index += 1;
    }
    paths
}

/// Tarjan's strongly connected components, each sorted, in an order that does not depend on
/// anything but the graph.
fn strongly_connected_components(edges: &Edges) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        edges: &'a Edges,
        next_index: usize,
        index: BTreeMap<&'a str, usize>,
        low_link: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<Module>>,
    }

    impl<'a> Tarjan<'a> {
        fn visit(&mut self, module: &'a str) {
            self.index.insert(module, self.next_index);
            self.low_link.insert(module, self.next_index);
            self.next_index += 1;
            self.stack.push(module);
            self.on_stack.insert(module);
            let edges = self.edges;
            for target in edges.get(module).into_iter().flat_map(BTreeMap::keys) {
                let target = target.as_str();
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low_link[module].min(self.low_link[target]);
                    self.low_link.insert(module, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low_link[module].min(self.index[target]);
                    self.low_link.insert(module, low);
                }
            }
            if self.low_link[module] == self.index[module] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_owned());
                    if member == module {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }

    let mut tarjan = Tarjan {
        edges,
        next_index: 0,
        index: BTreeMap::new(),
        low_link: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for module in edges.keys() {
        if !tarjan.index.contains_key(module.as_str()) {
            tarjan.visit(module);
        }
    }
    let mut components = tarjan.components;
    components.sort();
    components
}

/// A shortest cycle through `component` (breadth first from each of its modules, the first
/// module in order among the shortest), its first module repeated at the end.
fn shortest_cycle(component: &[Module], edges: &Edges) -> Vec<Module> {
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut best: Option<Vec<Module>> = None;
    for start in component {
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start.as_str()]);
        let mut closing = None;
        'search: while let Some(module) = queue.pop_front() {
            for target in edges[module].keys() {
                let target = target.as_str();
                if !members.contains(target) {
                    continue;
                }
                if target == start {
                    closing = Some(module);
                    break 'search;
                }
                if !came_from.contains_key(target) {
                    came_from.insert(target, module);
                    queue.push_back(target);
                }
            }
        }
        let Some(mut module) = closing else {
            continue;
        };
        let mut cycle = vec![start.clone()];
        while module != start {
            cycle.push(module.to_owned());
            module = came_from[module];
        }
        cycle.push(start.clone());
        cycle.reverse();
        if best.as_ref().is_none_or(|best| cycle.len() < best.len()) {
            best = Some(cycle);
        }
    }
    best.unwrap_or_default()
}

fn describe(crate_name: &str, location: &str, cycles: &[Cycle]) -> String {
    let mut text = format!("crate `{crate_name}`: {} cycle(s)\n", cycles.len());
    for cycle in cycles {
        let names: Vec<&str> = cycle.modules.iter().map(|module| display(module)).collect();
        let example: Vec<&str> = cycle.example.iter().map(|module| display(module)).collect();
        let _ = writeln!(
            text,
            "\n  {} modules in one cycle: {}",
            names.len(),
            names.join(", ")
        );
        let _ = writeln!(text, "  a shortest cycle: {}", example.join(" -> "));
        let evidence = |from: &str, to: &str| {
            cycle
                .edges
                .iter()
                .find(|(edge_from, edge_to, _)| edge_from == from && edge_to == to)
                .map(|(_, _, evidence)| evidence.clone())
        };
        for pair in cycle.example.windows(2) {
            if let Some(evidence) = evidence(&pair[0], &pair[1]) {
                let _ = writeln!(
                    text,
                    "    {} -> {}: {location}{}:{} `{}`",
                    display(&pair[0]),
                    display(&pair[1]),
                    evidence.file,
                    evidence.line,
                    evidence.path
                );
            }
        }
        let _ = writeln!(text, "  every edge inside it ({}):", cycle.edges.len());
        for (from, to, evidence) in &cycle.edges {
            let _ = writeln!(
                text,
                "    {} -> {}: {location}{}:{} `{}`",
                display(from),
                display(to),
                evidence.file,
                evidence.line,
                evidence.path
            );
        }
    }
    text.push('\n');
    text
}

mod checker {
    use super::*;

    fn files(files: &[(&str, &str)]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect()
    }

    fn segments(path: &str) -> Vec<String> {
        path.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn files_map_to_modules() {
        assert_eq!(module_of_file("lib.rs").as_deref(), Some(""));
        assert_eq!(module_of_file("main.rs").as_deref(), Some(""));
        assert_eq!(module_of_file("a.rs").as_deref(), Some("a"));
        assert_eq!(module_of_file("a/mod.rs").as_deref(), Some("a"));
        assert_eq!(module_of_file("a/b.rs").as_deref(), Some("a::b"));
        assert_eq!(module_of_file("a/b/mod.rs").as_deref(), Some("a::b"));
        assert_eq!(module_of_file("a/b.txt"), None);
    }

    #[test]
    fn use_trees_expand_to_paths() {
        assert_eq!(
            use_tree_paths(" crate::{a::b, c::{self, d as e}, f::*,\n    g,\n}"),
            vec![
                segments("crate::a::b"),
                segments("crate::c"),
                segments("crate::c::d"),
                segments("crate::f"),
                segments("crate::g"),
            ]
        );
        assert_eq!(
            use_tree_paths(" crate::a::B"),
            vec![segments("crate::a::B")]
        );
        assert_eq!(use_tree_paths(" std::fmt"), vec![segments("std::fmt")]);
    }

    #[test]
    fn paths_resolve_to_the_longest_file_module() {
        let modules: BTreeSet<Module> = ["", "a", "a::b"].map(str::to_owned).into();
        assert_eq!(resolve(&segments("a::b::c::Item"), &modules), "a::b");
        assert_eq!(resolve(&segments("a::c::Item"), &modules), "a");
        assert_eq!(resolve(&segments("Item"), &modules), "");
    }

    #[test]
    fn references_count_uses_and_inline_paths_but_not_re_exports_comments_or_tests() {
        let source = r#"//! Uses `crate::commented` in a doc comment.
use crate::{a::b, c};
use crate::d::{
    E,
    F,
};
pub use crate::re_exported::X;
pub(crate) use crate::re_exported_to_the_crate::Y;
use super::parent::Z;
// use crate::line_comment::W;
/* crate::block_comment */
pub(in crate::visibility) fn f() -> crate::inline::Item {
    let message = "crate::g and more words";
    #[serde(with = "crate::serde_path::function")]
    $crate::macro_path::h();
    '"';
    for item in crate::in_a_loop::items() {}
}
#[cfg(test)]
pub(crate) fn helper() -> crate::test_helper::Item {}
#[cfg(test)]
mod tests {
    use crate::in_tests;
}
#[cfg(test)]
mod more_tests;
fn after_tests() -> crate::after::Item {}
"#;
        let (cleaned, test_modules) = without_test_items(&without_comments_and_literals(source));
        assert_eq!(test_modules, vec!["more_tests".to_owned()]);
        let found: Vec<(String, usize)> = crate_references(&cleaned)
            .into_iter()
            .map(|reference| (reference.segments.join("::"), reference.line))
            .collect();
        let expected = [
            ("a::b", 2),
            ("c", 2),
            ("d::E", 3),
            ("d::F", 3),
            ("inline::Item", 12),
            ("serde_path::function", 14),
            ("in_a_loop::items", 17),
            ("after::Item", 27),
        ];
        assert_eq!(
            found,
            expected
                .map(|(path, line)| (path.to_owned(), line))
                .to_vec()
        );
    }

    #[test]
    fn a_cycle_through_two_modules_is_found() {
        let cycles = find_cycles(&files(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            ("b/mod.rs", "pub struct B(crate::a::A);\nmod inner;\n"),
            ("b/inner.rs", "use crate::c::C;\n"),
            ("c.rs", "pub struct C;\n"),
        ]));
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b"]);
        assert_eq!(cycles[0].example, ["a", "b", "a"]);
        assert_eq!(
            cycles[0].edges[0],
            (
                "a".to_owned(),
                "b".to_owned(),
                Evidence {
                    file: "a.rs".to_owned(),
                    line: 1,
                    path: "crate::b::B".to_owned()
                }
            )
        );
    }

    #[test]
    fn the_shortest_cycle_of_a_larger_component_is_shown() {
        // a -> b -> c -> d -> a, and c -> b: one component of four, a shortest cycle b -> c -> b.
        let cycles = find_cycles(&files(&[
            ("lib.rs", ""),
            ("a.rs", "use crate::b::B;"),
            ("b.rs", "use crate::c::C;"),
            ("c.rs", "use crate::{b::B, d::D};"),
            ("d.rs", "fn f() { crate::a::f() }"),
        ]));
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(cycles[0].modules, ["a", "b", "c", "d"]);
        assert_eq!(cycles[0].example, ["b", "c", "b"]);
    }

    #[test]
    fn a_graph_without_cycles_passes() {
        let cycles = find_cycles(&files(&[
            (
                "lib.rs",
                "pub use a::A;\nfn f() -> crate::a::A { crate::b::g() }\n",
            ),
            (
                "a/mod.rs",
                "use crate::b::B;\nmod child;\npub use child::Child;\n",
            ),
            ("a/child.rs", "use super::A;\nuse crate::b::B;\n"),
            (
                "b.rs",
                "pub use crate::a::A;\n#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
            ),
            ("c/mod.rs", "#[cfg(test)]\nmod tests;\n"),
            ("c/tests.rs", "use crate::a::A;\n"),
        ]));
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn a_module_naming_itself_or_its_root_is_no_cycle() {
        let cycles = find_cycles(&files(&[
            ("lib.rs", "pub struct Root;\n"),
            (
                "a.rs",
                "use crate::a::Own;\nuse crate::Root;\npub struct Own;\n",
            ),
        ]));
        assert!(cycles.is_empty(), "{cycles:?}");
    }
}
