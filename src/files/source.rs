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
//!
//! Another tool's folder is read through its `layout` (`--layout`, or detected: from the
//! names first, which are free, then from the markers in the bytes already read, so the
//! native no-op run pays one substring search per file and nothing else).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, FileProblem, Result};
use crate::files::graph::Graph;
use crate::files::layout::{self, Layout};
use crate::files::migration;

/// The files of `dir`, or none yet: `new` (and `new --autogenerate`) start a project's
/// first migration in a folder that does not exist.
pub fn load_or_empty(dir: &Path, layout: Option<Layout>) -> Result<Graph> {
    if dir.exists() {
        load(dir, layout)
    } else {
        Graph::build(Vec::new()).map_err(Error::InvalidFiles)
    }
}

/// Reads and validates every `*.sql` file of `dir` (not recursive; other files and hidden
/// files are ignored, so a README can sit beside the migrations), as `layout` says or,
/// when `None`, as the folder shows.
pub fn load(dir: &Path, layout: Option<Layout>) -> Result<Graph> {
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
            if layout::is_candidate(&shown) {
                files.push(Err(FileProblem::new(
                    dir.join(&shown).display().to_string(),
                    None,
                    "the file name is not valid UTF-8: rename it",
                )));
            }
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if !layout::is_candidate(name) {
            skipped(dir, name, &entry);
            continue;
        }
        match kind(&entry) {
            Kind::File => files.push(Ok(name.to_string())),
            Kind::Directory => tracing::warn!(
                "skipped {}: a folder, and migrations are read from {} alone (not from subfolders)",
                dir.join(name).display(),
                dir.display()
            ),
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

    let mut names: Vec<String> = files
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let mut problems: Vec<FileProblem> = files.into_iter().filter_map(Result::err).collect();
    let shown_dir = dir.display().to_string();
    let by_names = match layout {
        Some(_) => None,
        None => Some(layout::by_names(&shown_dir, &names)),
    };
    if let Some(layout::ByNames::Mixed(problem)) = by_names {
        problems.push(problem);
        return Err(Error::InvalidFiles(problems));
    }
    // `.sql.conf` files are Flyway's: a native folder ignores them, as it always did.
    let flyway = layout == Some(Layout::Flyway) || by_names == Some(layout::ByNames::Flyway);
    let foreign = layout.is_some_and(|l| !l.is_native())
        || matches!(
            by_names,
            Some(layout::ByNames::Pairs { .. } | layout::ByNames::Flyway)
        );
    if !flyway && !foreign {
        names.retain(|n| n.ends_with(".sql"));
    }

    // A folder that is (or may well be) native is parsed as it is read, so each file's
    // bytes are dropped at once, as before layouts; only a file with another tool's
    // markers is kept until the layout is known.
    let speculate = match layout {
        Some(layout) => layout.is_native(),
        None => by_names == Some(layout::ByNames::Plain),
    };
    let native = layout
        .filter(|l| l.is_native())
        .unwrap_or(Layout::Schemagate);
    let detect = layout.is_none();
    let read: Vec<Early> = on_every_core(&names, |n| match read_file(dir, n, detect) {
        Err(problem) => Early::Failed(problem),
        Ok(f) if speculate && (layout.is_some() || !(f.marks.goose || f.marks.sql_migrate)) => {
            Early::Parsed(f.marks, parse_native(native, &f.file))
        }
        Ok(f) => Early::Kept(f),
    });
    let layout = match (layout, &by_names) {
        (Some(layout), _) => layout,
        (None, Some(by_names)) => {
            let marks: Vec<(&str, layout::Marks)> = names
                .iter()
                .zip(&read)
                .filter_map(|(name, early)| match early {
                    Early::Parsed(marks, _) => Some((name.as_str(), *marks)),
                    Early::Kept(f) => Some((name.as_str(), f.marks)),
                    Early::Failed(_) => None,
                })
                .collect();
            match layout::by_marks(&shown_dir, by_names, &marks) {
                Ok(layout) => layout,
                Err(problem) => {
                    problems.push(problem);
                    return Err(Error::InvalidFiles(problems));
                }
            }
        }
        (None, None) => Layout::Schemagate,
    };
    if layout.is_native() {
        tracing::debug!("reading {} as a {layout} folder", dir.display());
    } else {
        tracing::info!("reading {} as a {layout} folder", dir.display());
    }

    let mut migrations = Vec::with_capacity(read.len());
    let mut files = Vec::new();
    for (name, early) in names.iter().zip(read) {
        let parsed = match early {
            Early::Failed(problem) => {
                problems.push(problem);
                continue;
            }
            Early::Kept(f) if layout.is_native() => parse_native(layout, &f.file),
            Early::Kept(f) => {
                files.push(f.file);
                continue;
            }
            Early::Parsed(_, parsed) if layout.is_native() => parsed,
            // Parsed as native before the markers of other files said otherwise (rare:
            // such a file is then usually an error of that layout): read it again.
            Early::Parsed(..) => {
                match read_file(dir, name, false) {
                    Ok(f) => files.push(f.file),
                    Err(problem) => problems.push(problem),
                }
                continue;
            }
        };
        match parsed {
            Ok(m) => migrations.push(m),
            Err(mut file_problems) => problems.append(&mut file_problems),
        }
    }
    if !layout.is_native() {
        let (mut read, mut more) = layout::read(layout, &shown_dir, &files);
        migrations.append(&mut read);
        problems.append(&mut more);
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
        return Err(Error::InvalidFiles(problems));
    }
    Graph::build(migrations).map_err(Error::InvalidFiles)
}

/// `work` over `items` on every core (at most 8), in order.
fn on_every_core<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = items.len().div_ceil(threads).max(64);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|items| scope.spawn(move || items.iter().map(work).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A name that looks like a migration but is not read gets a warning: `1_a.SQL`,
/// `1_a.sql.txt`, `1_a.sql.bak`, a subfolder. Saying nothing would let a misnamed file sit
/// there unapplied while the gate passes.
fn skipped(dir: &Path, name: &str, entry: &fs::DirEntry) {
    let lower = name.to_ascii_lowercase();
    let why = if lower.ends_with(".sql") {
        "only the lower-case `.sql` ending is read: rename it"
    } else if lower.contains(".sql.") || lower.ends_with(".sql~") {
        "its name does not end in `.sql`: rename it if it is a migration"
    } else if matches!(kind(entry), Kind::Directory) {
        "a folder, and migrations are read from the folder alone (not from subfolders)"
    } else {
        return;
    };
    tracing::warn!("skipped {}: {why}", dir.join(name).display());
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

/// A file's bytes, and what its markers say for detection.
struct ReadFile {
    file: layout::File,
    marks: layout::Marks,
}

type Loaded = std::result::Result<ReadFile, FileProblem>;

/// A file after the first pass.
enum Early {
    Failed(FileProblem),
    /// Parsed in the native format, its bytes dropped.
    Parsed(layout::Marks, Parsed),
    /// Kept until the layout is known.
    Kept(ReadFile),
}

fn parse_native(layout: Layout, file: &layout::File) -> Parsed {
    let bytes = match layout {
        Layout::Dbmate => layout::dbmate_markers(&file.bytes),
        _ => std::borrow::Cow::Borrowed(file.bytes.as_slice()),
    };
    migration::parse(&file.path, &file.name, &bytes)
}

/// `detect`: also find the file's markers (only needed when no `--layout` was given).
fn read_file(dir: &Path, name: &str, detect: bool) -> Loaded {
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
        Ok(_) => Ok(ReadFile {
            marks: if detect {
                layout::marks(&bytes)
            } else {
                layout::Marks::default()
            },
            file: layout::File {
                name: name.to_string(),
                path: shown,
                bytes,
            },
        }),
        Err(e) => Err(FileProblem::new(shown, None, format!("cannot read: {e}"))),
    }
}
