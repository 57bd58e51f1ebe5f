//! The findings for people (text), for scripts (JSON) and for GitHub code scanning
//! (SARIF 2.1.0). SARIF is built by hand with serde_json: the SARIF crates pull in a
//! large generated model for the handful of fields code scanning reads.

use serde_json::{Value, json};

use crate::lint::observe::Observed;
use crate::lint::rules::{Finding, RULES};

/// `file:line: rule: message` with the lock and the safe pattern under it.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}: {}: {}\n",
            f.file,
            f.line,
            f.rule.name(),
            f.message
        ));
        out.push_str(&format!("    statement: {}\n", f.statement));
        if let Some(lock) = f.lock {
            out.push_str(&format!(
                "    lock: {} on {} (blocks {}), held until the migration's transaction ends\n",
                lock.name(),
                f.locked,
                f.blocks().words()
            ));
        }
        out.push_str(&format!("    safe: {}\n", f.fix));
    }
    out
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "rule": f.rule.name(),
        "file": f.file,
        "line": f.line,
        "revision": f.revision,
        "object": f.object,
        "lock": f.lock.map(|l| l.name()),
        "locked": f.lock.map(|_| f.locked.as_str()),
        "blocks": f.lock.map(|_| f.blocks().words()),
        "message": f.message,
        "safe": f.fix,
        "statement": f.statement,
    })
}

/// `{"migrations": n, "statements": n, "findings": [...], "linted": [...]}`: `linted` has
/// every statement observed with the locks it held on existing objects, so a script can
/// set the observation beside another linter's verdict.
pub fn json(findings: &[Finding], observed: &[Observed]) -> Value {
    let statements: usize = observed
        .iter()
        .map(|o| o.observation.statements.len())
        .sum();
    let linted: Vec<Value> = observed
        .iter()
        .map(|o| {
            json!({
                "revision": o.observation.revision,
                "file": o.observation.path,
                "transactional": o.observation.transactional,
                "elapsed_ms": o.elapsed.as_secs_f64() * 1000.0,
                "statements": o.observation.statements.iter().map(|s| json!({
                    "line": s.line,
                    "locks": s.locks.iter().map(|(object, mode)| json!({
                        "object": object,
                        "mode": mode.name(),
                        "blocks": mode.blocks().words(),
                    })).collect::<Vec<_>>(),
                    "observed_locks": !s.concurrently,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "migrations": observed.len(),
        "statements": statements,
        "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
        "linted": linted,
    })
}

/// A SARIF 2.1.0 log with one run: every rule, every finding as a result with its place.
pub fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.name(),
                "name": r.name(),
                "shortDescription": {"text": r.summary()},
                "defaultConfiguration": {"level": "warning"},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let lock = f
                .lock
                .map(|l| {
                    format!(
                        " Holds {} on {} (blocks {}).",
                        l.name(),
                        f.locked,
                        f.blocks().words()
                    )
                })
                .unwrap_or_default();
            json!({
                "ruleId": f.rule.name(),
                "ruleIndex": RULES.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": "warning",
                "message": {"text": format!("{}.{lock} Safe: {}", f.message, f.fix)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": f.line},
                    }
                }],
                "properties": {"object": f.object, "revision": f.revision},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "schemagate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}
