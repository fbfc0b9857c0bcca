//! Printing an audit report, for people and for machines.

use std::io::Write;

use super::{Exchange, Report, Severity};

fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn evidence(out: &mut dyn Write, exchange: &Exchange) -> std::io::Result<()> {
    let request = &exchange.request;
    writeln!(out, "    > {} {} HTTP/1.1", request.method, request.target)?;
    for (name, value) in &request.headers {
        writeln!(out, "    > {name}: {value}")?;
    }
    let response = &exchange.response;
    writeln!(
        out,
        "    < HTTP/1.1 {} {}",
        response.status,
        reason(response.status)
    )?;
    if response.headers.is_empty() {
        writeln!(out, "    < (no Access-Control-*, Vary or Location header)")?;
    }
    for (name, value) in &response.headers {
        writeln!(out, "    < {name}: {value}")?;
    }
    Ok(())
}

/// Wraps `text` at about `width` columns, each line indented by `indent`.
fn wrapped(out: &mut dyn Write, indent: &str, text: &str, width: usize) -> std::io::Result<()> {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            writeln!(out, "{indent}{line}")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        writeln!(out, "{indent}{line}")?;
    }
    Ok(())
}

pub(super) fn human(report: &Report, fail_on: Severity, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "corsgate audit {}", report.url)?;
    for t in &report.trusted_origins {
        let how = if t.source == "derived" {
            "derived from the server's own Access-Control-Allow-Origin"
        } else {
            "given with --origin"
        };
        writeln!(out, "trusted origin: {} ({how})", t.origin)?;
    }
    writeln!(
        out,
        "requests sent: {} (at most {})",
        report.requests_sent, report.max_requests
    )?;
    for finding in &report.findings {
        writeln!(out)?;
        writeln!(
            out,
            "[{}] {}: {}",
            finding.severity.as_str(),
            finding.id,
            finding.title
        )?;
        wrapped(out, "  ", &finding.detail, 88)?;
        writeln!(out, "  evidence:")?;
        for (i, exchange) in finding.evidence.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            evidence(out, exchange)?;
        }
        wrapped(out, "  ", &format!("fix: {}", finding.fix), 88)?;
    }
    if !report.notes.is_empty() {
        writeln!(out)?;
        for note in &report.notes {
            wrapped(out, "", &format!("note: {note}"), 92)?;
        }
    }
    writeln!(out)?;
    let mut counts: Vec<String> = Vec::new();
    for severity in [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ] {
        let n = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .count();
        if n > 0 {
            counts.push(format!("{n} {}", severity.as_str()));
        }
    }
    let failing = report
        .findings
        .iter()
        .filter(|f| f.severity >= fail_on)
        .count();
    let total = report.findings.len();
    if total == 0 {
        writeln!(
            out,
            "no findings (failing at {} or above)",
            fail_on.as_str()
        )?;
    } else {
        writeln!(
            out,
            "{total} finding{} ({}); {failing} at {} or above",
            if total == 1 { "" } else { "s" },
            counts.join(", "),
            fail_on.as_str()
        )?;
    }
    Ok(())
}

pub(super) fn json(report: &Report, fail_on: Severity, out: &mut dyn Write) -> anyhow::Result<()> {
    let failed = report.worst().is_some_and(|w| w >= fail_on);
    let value = serde_json::json!({
        "url": report.url,
        "trusted_origins": report.trusted_origins,
        "requests_sent": report.requests_sent,
        "max_requests": report.max_requests,
        "fail_on": fail_on,
        "failed": failed,
        "findings": report.findings,
        "notes": report.notes,
    });
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)?;
    Ok(())
}
