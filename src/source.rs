//! Reading the migrations folder into a validated graph, before any network I/O.
//!
//! Every problem in every file is collected, so one run shows the whole list instead of
//! making the user fix them one at a time.

use std::fs;
use std::path::Path;

use crate::error::{Error, FileProblem, Result};
use crate::graph::Graph;
use crate::migration;

/// Reads and validates every `*.sql` file of `dir` (not recursive; other files and hidden
/// files are ignored, so a README can sit beside the migrations).
pub fn load(dir: &Path) -> Result<Graph> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot read the migrations folder {}: {e}; set --migrations or SCHEMAGATE_MIGRATIONS",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::Usage(format!(
                "cannot list the migrations folder {}: {e}",
                dir.display()
            ))
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            let shown = name.to_string_lossy().into_owned();
            if shown.ends_with(".sql") {
                files.push(Err(FileProblem::new(
                    dir.join(&shown).display().to_string(),
                    None,
                    "the file name is not valid UTF-8: rename it",
                )));
            }
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".sql") {
            continue;
        }
        let is_file = entry.file_type().map(|t| !t.is_dir()).unwrap_or(false);
        if is_file {
            files.push(Ok(name.to_string()));
        }
    }

    let mut problems = Vec::new();
    let mut migrations = Vec::new();
    for file in files {
        let name = match file {
            Ok(name) => name,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let path = dir.join(&name);
        let shown = path.display().to_string();
        match fs::read(&path) {
            Ok(bytes) => match migration::parse(&shown, &name, &bytes) {
                Ok(m) => migrations.push(m),
                Err(mut file_problems) => problems.append(&mut file_problems),
            },
            Err(e) => problems.push(FileProblem::new(shown, None, format!("cannot read: {e}"))),
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
        return Err(Error::InvalidFiles(problems));
    }
    Graph::build(migrations).map_err(Error::InvalidFiles)
}
