//! libpq's password file, so a password can stay out of the URL and the environment
//! (`PGPASSFILE`, default `~/.pgpass`), as psql and every libpq client allow.
//!
//! Each line is `hostname:port:database:username:password`; a field of exactly `*`
//! matches anything, `\` makes the next character literal (`\:` and `\\`), lines starting
//! with `#` are comments, and the first matching line wins. As in libpq the file is only
//! read when neither the URL nor `PGPASSWORD` gives a password, a missing or unreadable
//! file is skipped (a debug line says so), and a file that the group or others may read is
//! ignored with a warning: a password in a world-readable file is no secret.

use std::path::{Path, PathBuf};

use tokio_postgres::config::{Config, Host};

use crate::env::Env;

/// Where the password file is: `PGPASSFILE`, else `$HOME/.pgpass`.
pub fn path(env: Env<'_>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    set("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| Some(Path::new(&set("HOME")?).join(".pgpass")))
}

/// The password the file gives for `config`'s user and database on its first host that
/// has a line, or `None`.
pub fn find(config: &Config, env: Env<'_>) -> Option<String> {
    let path = path(env)?;
    let text = read(&path)?;
    let user = config.get_user()?;
    let database = config.get_dbname().unwrap_or(user);
    let ports = config.get_ports();
    config.get_hosts().iter().enumerate().find_map(|(i, host)| {
        // One port for every host, or one each (tokio-postgres checks the counts).
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        lookup(&text, &host_name(host), port, database, user)
    })
}

/// The host as the file names it: a TCP host as written; a unix socket by its directory,
/// or `localhost` for a default socket directory, as libpq matches them.
fn host_name(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        #[cfg(unix)]
        Host::Unix(dir) => {
            let default = ["/tmp", "/var/run/postgresql", "/run/postgresql"];
            if default.iter().any(|d| dir == Path::new(d)) {
                "localhost".to_string()
            } else {
                dir.display().to_string()
            }
        }
    }
}

/// The file's text, or `None` (and why, in the log) when it cannot or must not be used.
fn read(path: &Path) -> Option<String> {
    let shown = path.display();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) => {
            tracing::debug!("password file {shown} not used: {e}");
            return None;
        }
    };
    if !metadata.is_file() {
        tracing::warn!("password file {shown} is not a plain file: ignored");
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "password file {shown} can be read by the group or others: ignored; \
                 make it private with chmod 0600 {shown}"
            );
            return None;
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::debug!("password file {shown} not used: {e}");
            None
        }
    }
}

/// The password of the first line of `text` that matches; pure, for the tests.
pub fn lookup(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut rest = line;
            for want in wanted {
                rest = matching_field(rest, want)?;
            }
            let password = unescape_until_colon(rest);
            (!password.is_empty()).then_some(password)
        })
}

/// If the field at the start of `line` matches `want`, what follows its `:`.
fn matching_field<'a>(line: &'a str, want: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut wanted = want.chars();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        let literal = match c {
            ':' => {
                // The field ended: a match if all of `want` was used up.
                return wanted.next().is_none().then(|| &line[i + 1..]);
            }
            '\\' => chars.next().map_or('\\', |(_, escaped)| escaped),
            other => other,
        };
        if wanted.next() != Some(literal) {
            return None;
        }
    }
    // The line ended inside the first four fields.
    None
}

/// The password field: backslash escapes, up to an unescaped `:` or the end of the line.
fn unescape_until_colon(field: &str) -> String {
    let mut password = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => password.push(chars.next().unwrap_or('\\')),
            other => password.push(other),
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# hostname:port:database:username:password
db.internal:5432:app:app:first\\:pass\\\\word
db.internal:*:*:app:any-db
*:6543:*:*:wild-port
127.0.0.1:5432:app:other:ip
\\*:5432:app:star:literal-star
db.internal:5432:short
db.internal:5432:app:empty:
/run/sockets:5432:app:app:socket
";

    fn find_in(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
        lookup(FILE, host, port, db, user)
    }

    #[test]
    fn first_matching_line_wins_and_escapes_are_undone() {
        assert_eq!(
            find_in("db.internal", 5432, "app", "app").as_deref(),
            Some("first:pass\\word")
        );
        assert_eq!(
            find_in("db.internal", 5432, "other_db", "app").as_deref(),
            Some("any-db")
        );
        assert_eq!(
            find_in("db.internal", 9999, "x", "app").as_deref(),
            Some("any-db")
        );
    }

    #[test]
    fn wildcards_match_whole_fields_only() {
        assert_eq!(
            find_in("anything", 6543, "x", "y").as_deref(),
            Some("wild-port")
        );
        // `\*` is a literal star, not a wildcard.
        assert_eq!(find_in("other", 5432, "app", "star"), None);
        assert_eq!(
            find_in("*", 5432, "app", "star").as_deref(),
            Some("literal-star")
        );
    }

    #[test]
    fn no_match_short_lines_and_empty_passwords() {
        assert_eq!(find_in("db.internal", 5432, "app", "nobody"), None);
        assert_eq!(find_in("db.internal", 5432, "app", "empty"), None);
        assert_eq!(find_in("elsewhere", 5432, "app", "app"), None);
        assert_eq!(lookup("", "h", 1, "d", "u"), None);
        assert_eq!(lookup("h:1:d", "h", 1, "d", "u"), None);
        assert_eq!(lookup("h:1:d:u", "h", 1, "d", "u"), None);
    }

    #[test]
    fn password_ends_at_an_unescaped_colon_and_crlf_is_a_line_end() {
        assert_eq!(
            lookup("h:1:d:u:a:b\r\n", "h", 1, "d", "u").as_deref(),
            Some("a")
        );
        assert_eq!(
            lookup("h:1:d:u:a\\:b\r\n", "h", 1, "d", "u").as_deref(),
            Some("a:b")
        );
        // A lone backslash at the end stays.
        assert_eq!(
            lookup("h:1:d:u:ab\\", "h", 1, "d", "u").as_deref(),
            Some("ab\\")
        );
        // Escaped characters in the other fields.
        assert_eq!(
            lookup("h\\:x:1:d\\\\b:u:pw", "h:x", 1, "d\\b", "u").as_deref(),
            Some("pw")
        );
        // A prefix of a field is not a match.
        assert_eq!(lookup("host:1:d:u:pw", "hos", 1, "d", "u"), None);
        assert_eq!(lookup("h:1:d:u:pw", "h", 12, "d", "u"), None);
    }

    #[test]
    fn unix_sockets_match_by_directory_or_as_localhost() {
        assert_eq!(
            host_name(&Host::Unix("/var/run/postgresql".into())),
            "localhost"
        );
        assert_eq!(
            host_name(&Host::Unix("/run/sockets".into())),
            "/run/sockets"
        );
        assert_eq!(
            find_in(
                &host_name(&Host::Unix("/run/sockets".into())),
                5432,
                "app",
                "app"
            )
            .as_deref(),
            Some("socket")
        );
    }

    #[test]
    fn path_from_pgpassfile_or_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            path(&env(&[("PGPASSFILE", "/s/pgpass"), ("HOME", "/h")])),
            Some(PathBuf::from("/s/pgpass"))
        );
        assert_eq!(
            path(&env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.pgpass"))
        );
        assert_eq!(path(&env(&[])), None);
    }
}
