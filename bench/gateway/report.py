"""Turns the runs of bench/gateway.sh into Markdown: medians, spreads, the
corsgate/nginx ratios and the targets, met or not.

    python3 report.py RESULTS.tsv MACHINE.md "COMMAND"
"""

import csv
import statistics
import sys

CASES = {
    "preflight": "(a) allowed preflights, answered by the proxy",
    "get": "(b) allowed GETs, proxied to the upstream",
    "handshake": "(c) preflights, each on a new TLS connection (--tls)",
}
SERVERS = ["corsgate", "nginx", "direct"]
SERVER_NAMES = {"corsgate": "corsgate", "nginx": "nginx", "direct": "upstream directly"}
# (column, heading, format)
METRICS = [
    ("rps", "requests/s", "{:,.0f}"),
    ("p50_ms", "p50 ms", "{:.3f}"),
    ("p99_ms", "p99 ms", "{:.3f}"),
    ("cpu_us_per_req", "CPU µs/request", "{:.2f}"),
    ("peak_rss_kib", "peak RSS MiB", "{:.1f}"),
]


def load(path):
    runs = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            values = {k: float(v) for k, v in row.items() if k not in ("case", "server", "run")}
            values["peak_rss_kib"] /= 1024  # shown in MiB
            runs.setdefault((row["case"], row["server"]), []).append(values)
    return runs


def median(runs, metric):
    return statistics.median(r[metric] for r in runs)


def ratio(numerator, denominator):
    """numerator / denominator, or None when the denominator is 0: CPU time is
    read in clock ticks (10 ms each), so a short run can measure none at all."""
    if denominator == 0:
        return None
    return numerator / denominator


def times(value, bold=False):
    if value is None:
        return "n/a"
    text = f"{value:.2f}×"
    return f"**{text}**" if bold else text


def cell(runs, metric, fmt):
    values = [r[metric] for r in runs]
    text = fmt.format(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
    return text


def main():
    results, machine, command = sys.argv[1:4]
    runs = load(results)
    out = []
    out.append("# Gateway benchmark results\n")
    out.append(
        "corsgate against nginx configured as the same CORS-terminating proxy, and "
        "against the upstream alone (see bench/README.md, Gateway). Medians of the "
        "runs, with min–max in parentheses; ratios are corsgate / nginx of the "
        "medians. CPU is the server's own (nginx: master + worker), not the "
        "upstream's; the upstream's CPU per request is in the last column of (b).\n"
    )
    out.append("```sh\n" + command + "\n```\n")
    with open(machine) as f:
        out.append(f.read())

    ratios = {}
    for case, title in CASES.items():
        servers = [s for s in SERVERS if (case, s) in runs]
        if not servers:
            continue
        extra = case == "get"
        out.append(f"## {title}\n")
        head = ["server"] + [h for _, h, _ in METRICS]
        if extra:
            head.append("upstream CPU µs/request")
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for server in servers:
            r = runs[(case, server)]
            row = [SERVER_NAMES[server]] + [cell(r, m, f) for m, _, f in METRICS]
            if extra:
                row.append(cell(r, "upstream_cpu_us_per_req", "{:.2f}"))
            out.append("| " + " | ".join(row) + " |")
        if (case, "corsgate") in runs and (case, "nginx") in runs:
            c, n = runs[(case, "corsgate")], runs[(case, "nginx")]
            case_ratios = {m: ratio(median(c, m), median(n, m)) for m, _, _ in METRICS}
            ratios[case] = case_ratios
            row = ["**corsgate / nginx**"] + [times(case_ratios[m], bold=True) for m, _, _ in METRICS]
            if extra:
                upstream = ratio(
                    median(c, "upstream_cpu_us_per_req"), median(n, "upstream_cpu_us_per_req")
                )
                row.append(times(upstream))
            out.append("| " + " | ".join(row) + " |")
            if any(v is None for v in case_ratios.values()):
                out.append("")
                out.append(
                    "n/a: nginx measured 0 there (CPU time is counted in clock ticks of "
                    "10 ms: the runs were too short to see any); run longer for a ratio."
                )
        out.append("")

    targets = [
        ("preflight", "cpu_us_per_req", "≤", 0.95, "preflights: CPU time per request ≤ 0.95× nginx's"),
        ("preflight", "rps", "≥", 1.0, "preflights: requests/s ≥ nginx's"),
        ("get", "cpu_us_per_req", "≤", 0.8, "proxied GETs: CPU time per request ≤ 0.8× nginx's"),
        ("get", "rps", "≥", 1.1, "proxied GETs: requests/s ≥ 1.1× nginx's"),
        ("get", "p99_ms", "≤", 1.0, "proxied GETs: p99 latency ≤ nginx's"),
        ("preflight", "peak_rss_kib", "≤", 0.5, "preflights: peak RSS ≤ 0.5× nginx's"),
        ("get", "peak_rss_kib", "≤", 0.5, "proxied GETs: peak RSS ≤ 0.5× nginx's"),
    ]
    out.append("## Targets\n")
    out.append("| target | corsgate / nginx | |")
    out.append("|---|---|---|")
    for case, metric, op, bound, text in targets:
        if case not in ratios:
            continue
        value = ratios[case][metric]
        if value is None:
            out.append(f"| {text} | n/a | not measured (nginx measured 0) |")
            continue
        met = value <= bound if op == "≤" else value >= bound
        out.append(f"| {text} | {value:.2f}× | {'met' if met else '**NOT met**'} |")
    out.append("")

    out.append("## Every run\n")
    head = ["case", "server", "run"] + [h for _, h, _ in METRICS] + ["upstream CPU µs/request"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    with open(results, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            values = [
                row["case"],
                SERVER_NAMES[row["server"]],
                row["run"],
                f"{float(row['rps']):,.0f}",
                f"{float(row['p50_ms']):.3f}",
                f"{float(row['p99_ms']):.3f}",
                f"{float(row['cpu_us_per_req']):.2f}",
                f"{float(row['peak_rss_kib']) / 1024:.1f}",
                f"{float(row['upstream_cpu_us_per_req']):.2f}" if row["case"] == "get" else "–",
            ]
            out.append("| " + " | ".join(values) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
