//! A fleet's plan, as pure functions: which targets a shard takes, when the next target
//! may start (`--canary`, `--max-failures`), and which target's exit code is the run's.
//!
//! Shards are assigned by a hash of each target's identity, never by its position in the
//! list: a list that grows, or is read in a different order by another pod, still gives
//! every target to exactly one shard, and a retried pod takes the same targets again.

use sha2::{Digest, Sha256};

/// This process's part of the fleet: `--shard INDEX/COUNT`, INDEX counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the target with this identity belongs to this shard.
    pub fn takes(&self, identity: &str) -> bool {
        shard_of(identity, self.count) == self.index
    }
}

/// The shard (0..count) of a target: the first 8 bytes of SHA-256 of its identity, modulo
/// the count. The same on every machine and in every version.
pub fn shard_of(identity: &str, count: u32) -> u32 {
    let digest = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
}

/// Settles the shard from `--shard` (`INDEX/COUNT` or `INDEX`), `--shard-count` and
/// Kubernetes' `JOB_COMPLETION_INDEX`; `None` without any of them. The error says which
/// setting to fix.
pub fn shard(
    flag: Option<&str>,
    count: Option<u32>,
    job_index: Option<&str>,
) -> Result<Option<Shard>, String> {
    let (index, from_flag) = match flag.map(str::trim) {
        Some(text) => match text.split_once('/') {
            Some((index, of)) => {
                let of = of.trim().parse::<u32>().map_err(|_| {
                    format!("--shard `{text}`: COUNT `{of}` is not a whole number; write INDEX/COUNT, as in 0/4")
                })?;
                if let Some(count) = count.filter(|&c| c != of) {
                    return Err(format!(
                        "--shard `{text}` says {of} shards but --shard-count (SCHEMAGATE_SHARD_COUNT) says {count}: keep one"
                    ));
                }
                (parse_index(index, "--shard")?, Some(of))
            }
            None => (parse_index(text, "--shard")?, None),
        },
        None => match job_index {
            Some(text) if count.is_some() => (parse_index(text, "JOB_COMPLETION_INDEX")?, None),
            // An Indexed Job without a shard count: not sharded, as without the Job.
            _ => match count {
                Some(_) => {
                    return Err(
                        "--shard-count (SCHEMAGATE_SHARD_COUNT) is set but not this process's index: \
                         pass --shard INDEX, or run it as a Kubernetes Indexed Job (which sets JOB_COMPLETION_INDEX)"
                            .into(),
                    );
                }
                None => return Ok(None),
            },
        },
    };
    let Some(count) = from_flag.or(count) else {
        return Err(format!(
            "--shard {index} needs the number of shards: write --shard {index}/COUNT, or set --shard-count (SCHEMAGATE_SHARD_COUNT)"
        ));
    };
    if count == 0 {
        return Err("the shard count is 0: give the number of shards, 1 or more".into());
    }
    if index >= count {
        return Err(format!(
            "shard index {index} is not below the shard count {count}: indexes run from 0 to {} (as Kubernetes counts completions)",
            count - 1
        ));
    }
    Ok(Some(Shard { index, count }))
}

fn parse_index(text: &str, from: &str) -> Result<u32, String> {
    text.trim().parse::<u32>().map_err(|_| {
        format!("{from} `{text}` is not a shard index: a whole number from 0, as in 0/4")
    })
}

/// A target line of a `--targets` file: what is on it, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLine {
    /// 1-based.
    pub line: usize,
    pub text: String,
}

/// The target lines of a `--targets` file: trimmed, without blank lines and `#` comments.
pub fn target_lines(text: &str) -> Vec<TargetLine> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(line, text)| TargetLine {
            line,
            text: text.to_string(),
        })
        .collect()
}

/// How much worse one target's exit code is than another's: the run exits with the worst.
/// A state only a person can settle (8) comes first, then a migration that fails (7), a
/// bug (1), configuration the server refuses (5) or schemagate refuses (3, 2), and last
/// what time may fix: a lock held (6), a server down (4), migrations still pending (9).
pub fn severity(code: i32) -> u8 {
    match code {
        0 => 0,
        9 => 1,
        4 => 2,
        6 => 3,
        11 => 4,
        10 => 5,
        2 => 6,
        3 => 7,
        5 => 8,
        1 => 9,
        7 => 10,
        8 => 11,
        // A signal: the run was stopped, which says more than any target.
        _ => 12,
    }
}

/// The exit codes in the order [`severity`] ranks them, most severe first (README).
pub const SEVERITY_ORDER: [i32; 11] = [8, 7, 1, 5, 3, 2, 10, 11, 6, 4, 9];

/// The run's exit code: the most severe of the targets' (0 when all are 0).
pub fn most_severe(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes.into_iter().max_by_key(|&c| severity(c)).unwrap_or(0)
}

/// When targets start: in the order given, at most `--canary N` of them until those all
/// succeeded, and none after `--max-failures K` failures. Concurrency (`--parallel`) is the
/// caller's: it asks only when it has room for one more.
#[derive(Debug, Clone)]
pub struct Rollout {
    total: usize,
    canary: usize,
    max_failures: Option<usize>,
    started: usize,
    canaries_done: usize,
    failed: usize,
    canary_failed: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start the target at this index.
    Start(usize),
    /// Wait for a running target to finish (the canaries are still running).
    Wait,
    /// Start nothing more: every target has started, or the rollout stopped (the reason).
    Stop(Option<String>),
}

impl Rollout {
    pub fn new(total: usize, canary: usize, max_failures: Option<usize>) -> Rollout {
        Rollout {
            total,
            canary: canary.min(total),
            max_failures,
            started: 0,
            canaries_done: 0,
            failed: 0,
            canary_failed: false,
        }
    }

    pub fn next(&self) -> Next {
        if self.canary_failed {
            return Next::Stop(Some(format!(
                "a canary failed (--canary {}): fix it, then run again",
                self.canary
            )));
        }
        if let Some(k) = self.max_failures
            && self.failed >= k
        {
            return Next::Stop(Some(format!(
                "{} failed, which is --max-failures {k}",
                crate::text::plural(self.failed, "target")
            )));
        }
        if self.started == self.total {
            return Next::Stop(None);
        }
        if self.started >= self.canary && self.canaries_done < self.canary {
            return Next::Wait;
        }
        Next::Start(self.started)
    }

    /// The target `next` said to start has started.
    pub fn started(&mut self) {
        self.started += 1;
    }

    /// The target at `index` finished, failed or not.
    pub fn finished(&mut self, index: usize, failed: bool) {
        if failed {
            self.failed += 1;
        }
        if index < self.canary {
            self.canaries_done += 1;
            self.canary_failed |= failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_read_from_the_flag_the_count_or_the_job_index() {
        assert_eq!(shard(None, None, None), Ok(None));
        assert_eq!(
            shard(None, None, Some("3")),
            Ok(None),
            "an Indexed Job, unsharded"
        );
        assert_eq!(
            shard(Some("1/4"), None, Some("3")),
            Ok(Some(Shard { index: 1, count: 4 })),
            "the flag wins over the Job's index"
        );
        assert_eq!(
            shard(Some("2"), Some(3), None),
            Ok(Some(Shard { index: 2, count: 3 }))
        );
        assert_eq!(
            shard(None, Some(4), Some("3")),
            Ok(Some(Shard { index: 3, count: 4 }))
        );
        assert_eq!(
            shard(Some("1/4"), Some(4), None),
            Ok(Some(Shard { index: 1, count: 4 }))
        );
        for (flag, count, job, says) in [
            (Some("4/4"), None, None, "not below the shard count 4"),
            (Some("1/0"), None, None, "shard count is 0"),
            (Some("x/4"), None, None, "`x` is not a shard index"),
            (Some("1/y"), None, None, "COUNT `y`"),
            (Some("1"), None, None, "needs the number of shards"),
            (Some("1/4"), Some(3), None, "keep one"),
            (None, Some(4), None, "not this process's index"),
            (None, Some(4), Some("-1"), "JOB_COMPLETION_INDEX `-1`"),
        ] {
            let e = shard(flag, count, job).expect_err(says);
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn shards_cover_every_target_once_and_stay_put() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("db.internal:5432/t{i}"))
            .collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let takers: Vec<u32> = (0..4)
                .filter(|&index| Shard { index, count: 4 }.takes(id))
                .collect();
            assert_eq!(takers.len(), 1, "{id} taken by {takers:?}");
            sizes[takers[0] as usize] += 1;
        }
        // A hash, not a range: each quarter within 20% of 250.
        assert!(sizes.iter().all(|&s| (200..300).contains(&s)), "{sizes:?}");
        // Pinned, so a new version never moves a target to another pod mid-rollout.
        assert_eq!(
            shard_of("db.internal:5432/t0", 4),
            shard_of("db.internal:5432/t0", 4)
        );
        assert_eq!(
            [
                shard_of("a", 1000),
                shard_of("127.0.0.1:5432/app#tenant_1", 7)
            ],
            [pinned("a", 1000), pinned("127.0.0.1:5432/app#tenant_1", 7)]
        );
    }

    /// The hash written out once more, independently of `shard_of`'s code.
    fn pinned(id: &str, count: u64) -> u32 {
        let d = Sha256::digest(id.as_bytes());
        let n = d[..8].iter().fold(0u64, |n, &b| (n << 8) | u64::from(b));
        (n % count) as u32
    }

    #[test]
    fn target_lines_skip_comments_and_blanks_and_keep_line_numbers() {
        let text = "# tenants\n\npostgres://a@h/one\n  host=h dbname=two  \n   # off\n";
        assert_eq!(
            target_lines(text),
            vec![
                TargetLine {
                    line: 3,
                    text: "postgres://a@h/one".into()
                },
                TargetLine {
                    line: 4,
                    text: "host=h dbname=two".into()
                },
            ]
        );
    }

    #[test]
    fn the_worst_code_wins_in_the_documented_order() {
        assert_eq!(most_severe([]), 0);
        assert_eq!(most_severe([0, 0]), 0);
        assert_eq!(most_severe([9, 4, 0]), 4);
        assert_eq!(most_severe([4, 7, 6]), 7);
        assert_eq!(most_severe([7, 8]), 8);
        assert_eq!(most_severe([8, 143]), 143);
        let mut ranked = SEVERITY_ORDER.to_vec();
        ranked.sort_by_key(|&c| std::cmp::Reverse(severity(c)));
        assert_eq!(ranked, SEVERITY_ORDER);
    }

    /// Runs a rollout with `parallel` slots where the targets in `fails` fail; returns the
    /// order they started in and why it stopped.
    fn simulate(
        total: usize,
        parallel: usize,
        canary: usize,
        max: Option<usize>,
        fails: &[usize],
    ) -> (Vec<usize>, Option<String>) {
        let mut rollout = Rollout::new(total, canary, max);
        let (mut running, mut order) = (Vec::new(), Vec::new());
        loop {
            while running.len() < parallel {
                match rollout.next() {
                    Next::Start(i) => {
                        rollout.started();
                        running.push(i);
                        order.push(i);
                    }
                    Next::Wait => break,
                    Next::Stop(why) if running.is_empty() => return (order, why),
                    Next::Stop(_) => break,
                }
            }
            // The oldest finishes first.
            let done = running.remove(0);
            rollout.finished(done, fails.contains(&done));
        }
    }

    #[test]
    fn targets_start_in_order_and_a_failure_stops_nothing_by_default() {
        let (order, why) = simulate(6, 2, 0, None, &[1, 3]);
        assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(why, None);
    }

    #[test]
    fn max_failures_stops_starting_new_targets() {
        let (order, why) = simulate(10, 1, 0, Some(2), &[1, 3, 5]);
        assert_eq!(order, vec![0, 1, 2, 3]);
        assert!(why.unwrap().contains("2 targets failed"));
    }

    #[test]
    fn the_canaries_finish_before_the_rest_start() {
        let mut rollout = Rollout::new(10, 2, None);
        assert_eq!(rollout.next(), Next::Start(0));
        rollout.started();
        assert_eq!(rollout.next(), Next::Start(1));
        rollout.started();
        assert_eq!(rollout.next(), Next::Wait, "two canaries in flight");
        rollout.finished(1, false);
        assert_eq!(rollout.next(), Next::Wait, "one canary still in flight");
        rollout.finished(0, false);
        assert_eq!(rollout.next(), Next::Start(2));
        let (order, why) = simulate(10, 4, 3, None, &[]);
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert_eq!(why, None);
    }

    #[test]
    fn a_failed_canary_stops_the_rollout() {
        let (order, why) = simulate(10, 4, 3, None, &[1]);
        assert_eq!(order, vec![0, 1, 2]);
        assert!(why.unwrap().contains("--canary 3"));
        // A failure after the canaries is an ordinary one.
        let (order, _) = simulate(5, 1, 1, None, &[3]);
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        // More canaries than targets: all of them are canaries.
        let (order, why) = simulate(2, 4, 5, None, &[]);
        assert_eq!((order, why), (vec![0, 1], None));
    }
}
