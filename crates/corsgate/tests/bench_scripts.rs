//! The benchmark scripts without running a benchmark: each parses, reads
//! `bench/lib.sh` and answers `--help` and a bad option as before; the gateway
//! report turns a run into Markdown even where nginx measured no CPU time.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::TempDir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bash(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("bash runs")
}

#[test]
fn the_scripts_parse_and_answer_help_and_bad_options_with_the_shared_set_up() {
    for script in [
        "bench/lib.sh",
        "bench/gateway.sh",
        "bench/idle.sh",
        "bench/c10k.sh",
        "bench/shadow-callgrind.sh",
        "bench/soak.sh",
        "bench/pool.sh",
        "bench/engine.sh",
    ] {
        let out = bash(&["-n", script]);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (script, first) in [
        ("bench/gateway.sh", "# Gateway benchmark"),
        ("bench/idle.sh", "# Idle-connection memory"),
        ("bench/c10k.sh", "# 10,000 concurrent clients"),
    ] {
        let out = bash(&[script, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{script}: {text}");
        assert!(text.starts_with(first), "{script}: {text}");
        let out = bash(&[script, "--no-such-option"]);
        assert_eq!(out.status.code(), Some(2), "{script}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "unknown argument: --no-such-option\n",
            "{script}"
        );
    }
    let out = bash(&["bench/gateway.sh", "--duration", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "--duration must be a whole number from 1 to 30\n"
    );
}

// A run of a second can measure no CPU tick at all for nginx (they are 10 ms
// each): the report divided by zero and printed nothing.
#[test]
fn the_gateway_report_says_n_a_for_a_ratio_over_zero_cpu() {
    let dir = TempDir::new("bench-report");
    let results = dir.write(
        "results.tsv",
        "case\tserver\trun\trequests\trps\tp50_ms\tp99_ms\tcpu_us_per_req\tpeak_rss_kib\tupstream_cpu_us_per_req\n\
         preflight\tcorsgate\t1\t1000\t1000\t0.1\t0.2\t10.0\t5120\t0\n\
         preflight\tnginx\t1\t1000\t1000\t0.1\t0.2\t0.0\t6144\t0\n\
         get\tcorsgate\t1\t1000\t900\t0.1\t0.3\t12.0\t5120\t4.0\n\
         get\tnginx\t1\t1000\t950\t0.1\t0.3\t8.0\t6144\t0.0\n\
         get\tdirect\t1\t1000\t2000\t0.05\t0.1\t4.0\t2048\t4.0\n",
    );
    let machine = dir.write("machine.md", "- a machine\n");
    let out = Command::new("python3")
        .arg(repo().join("bench/gateway/report.py"))
        .arg(&results)
        .arg(&machine)
        .arg("bench/gateway.sh --duration 1")
        .output()
        .expect("python3 runs (scripts/install-test-deps.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Preflights: the CPU ratio is n/a, the others are there.
    assert!(
        report.contains(
            "| **corsgate / nginx** | **1.00×** | **1.00×** | **1.00×** | n/a | **0.83×** |"
        ),
        "{report}"
    );
    assert!(report.contains("n/a: nginx measured 0"), "{report}");
    assert!(
        report.contains(
            "| preflights: CPU time per request ≤ 0.95× nginx's | n/a | not measured (nginx measured 0) |"
        ),
        "{report}"
    );
    // GETs: CPU measured on both sides, the upstream's nginx-side CPU is 0.
    assert!(
        report.contains("| **corsgate / nginx** | **0.95×** | **1.00×** | **1.00×** | **1.50×** | **0.83×** | n/a |"),
        "{report}"
    );
    assert!(
        report.contains(
            "| proxied GETs: CPU time per request ≤ 0.8× nginx's | 1.50× | **NOT met** |"
        ),
        "{report}"
    );
}
