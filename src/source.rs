//! Reading the migrations folder into a validated graph, before any network I/O.
//!
//! Every problem in every file is collected, so one run shows the whole list instead of
//! making the user fix them one at a time.
//!
//! Every run pays for this, including the no-op run at each container start, so files
//! are read on every core, each with open, read, close and nothing else.
//!
//! A migration is only ever read from a regular file: a FIFO, socket or device named
//! like one would block the read (and the container start) forever, so it is refused from
//! readdir's file type (free) or, for a symlink, from one stat of its target, and every
//! open is non-blocking in case the file is swapped after the listing.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
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
        match kind(&entry) {
            Kind::File => files.push(Ok(name.to_string())),
            Kind::Directory => {}
            Kind::Special(what) => files.push(Err(FileProblem::new(
                dir.join(name).display().to_string(),
                None,
                format!(
                    "{what}, not a regular file: reading it could block forever, so it was not \
                     opened; put the migration's SQL in a regular file, or remove it"
                ),
            ))),
        }
    }

    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut problems: Vec<FileProblem> = files.into_iter().filter_map(Result::err).collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = names.len().div_ceil(threads).max(64);
    let parsed: Vec<Parsed> = std::thread::scope(|scope| {
        let workers: Vec<_> = names
            .chunks(chunk)
            .map(|names| {
                scope.spawn(move || {
                    names
                        .iter()
                        .map(|n| read_and_parse(dir, n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut migrations = Vec::with_capacity(parsed.len());
    for outcome in parsed {
        match outcome {
            Ok(m) => migrations.push(m),
            Err(mut file_problems) => problems.append(&mut file_problems),
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
        return Err(Error::InvalidFiles(problems));
    }
    Graph::build(migrations).map_err(Error::InvalidFiles)
}

enum Kind {
    File,
    /// Folders (and symlinks to them) are skipped: the folder is not read recursively.
    Directory,
    /// A FIFO, socket or device, named for the message.
    Special(&'static str),
}

/// What an entry is, from readdir's type; only a symlink (or an entry whose type readdir
/// did not give) costs a stat of its target.
fn kind(entry: &fs::DirEntry) -> Kind {
    let file_type = match entry.file_type() {
        Ok(t) if t.is_symlink() => fs::metadata(entry.path()).map(|m| m.file_type()),
        other => other,
    };
    match file_type {
        Ok(t) if t.is_dir() => Kind::Directory,
        Ok(t) if t.is_fifo() => Kind::Special("a FIFO (named pipe)"),
        Ok(t) if t.is_socket() => Kind::Special("a unix socket"),
        Ok(t) if t.is_char_device() => Kind::Special("a character device"),
        Ok(t) if t.is_block_device() => Kind::Special("a block device"),
        // Regular files, and broken symlinks: the open reports those.
        _ => Kind::File,
    }
}

type Parsed = std::result::Result<migration::Migration, Vec<FileProblem>>;

fn read_and_parse(dir: &Path, name: &str) -> Parsed {
    let path = dir.join(name);
    let shown = path.display().to_string();
    let mut bytes = Vec::with_capacity(4096);
    // Through `take`: File's own read_to_end first asks for the size (statx, lseek).
    // O_NONBLOCK: a file swapped for a FIFO after the listing reads as empty, never blocks.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    match file.and_then(|file: File| file.take(u64::MAX).read_to_end(&mut bytes)) {
        Ok(_) => migration::parse(&shown, name, &bytes),
        Err(e) => Err(vec![FileProblem::new(
            shown,
            None,
            format!("cannot read: {e}"),
        )]),
    }
}
