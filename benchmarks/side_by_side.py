#!/usr/bin/env python3
"""The side-by-side table of issue #25: our node plugin against upstream's driver v1.6.0 + Azure provider v1.8.2,
each figure as ours, theirs and the ratio, with the issue's target where it sets one.

Reads what the three measurements wrote (run by scripts/bench-side-by-side.sh, or one by one):
- benchmarks/upstream.json        scripts/bench-upstream.sh: one node, direct CSI calls, the real API server;
- benchmarks/node-footprint.json  benchmarks/node_footprint.py: the node as deployed, through a real kubelet;
- benchmarks/twenty-nodes.json    benchmarks/twenty_nodes.py: 20 hollow kubelets, 500 pods, 10 000 classes.
Writes benchmarks/side-by-side.md (the table BENCHMARKS.md leads with) and prints it. Asserts nothing: a missed
target is printed as missed.

Usage: python3 benchmarks/side_by_side.py [--dir benchmarks]
"""
import argparse
import json
import os

MIB = 1024 * 1024


def load(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def ratio(ours, theirs):
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def number(value, digits=1):
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    return f"{value:.{digits}f}"


class Table:
    def __init__(self):
        self.rows = []

    def add(self, figure, ours, theirs, unit, target=None, met=None, source=""):
        """target: text; met: True/False/None (no target)."""
        self.rows.append((figure, ours, theirs, unit, ratio(ours, theirs), target, met, source))

    def markdown(self):
        lines = [
            "| figure | ours | upstream | ours/upstream | target | |",
            "|---|---|---|---|---|---|",
        ]
        for figure, ours, theirs, unit, r, target, met, _ in self.rows:
            verdict = "" if met is None else ("met" if met else "**missed**")
            unit_text = f" {unit}" if unit else ""
            lines.append(
                f"| {figure} | {number(ours)}{unit_text} | {number(theirs)}{unit_text} | "
                f"{number(r, 2)} | {target or ''} | {verdict} |"
            )
        return "\n".join(lines)


def at_most(r, bound):
    return None if r is None else r <= bound


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    table = Table()
    sources = []

    upstream = load(args.dir, "upstream.json")
    if upstream:
        rows = {row["figure"]: row for row in upstream["rows"]}
        sources.append(
            f"one node (scripts/bench-upstream.sh {upstream.get('volumes')} {upstream.get('rounds')}, "
            f"{upstream.get('cycles')} cycles): median of {upstream.get('rounds')} rounds a side"
        )

        def row(name, figure, unit, bound=None, target=None):
            found = rows.get(name)
            if not found:
                return
            ours, theirs = found.get("ours"), found.get("theirs")
            r = ratio(ours, theirs)
            met = at_most(r, bound) if bound is not None else None
            table.add(figure, ours, theirs, unit, target or (f"≤ {bound}×" if bound is not None else None), met)

        volumes = upstream.get("volumes")
        row("working_set_idle_mib", "working set, idle after start", "MiB", 0.5)
        row("working_set_mounted_mib", f"working set, {volumes} volumes mounted", "MiB", 0.5)
        row("working_set_after_cycles_mib", f"working set after {upstream.get('cycles')} publish+unpublish cycles", "MiB")
        row("rss_mounted_mib", f"RSS, {volumes} volumes mounted", "MiB")
        row("class_1_publish_p50_ms", "publish p50, 1 object", "ms", 0.5)
        row("class_10_publish_p50_ms", "publish p50, 10 objects", "ms", 0.5)
        row("class_50_publish_p50_ms", "publish p50, 50 objects (PFX included)", "ms", 0.5)
        row("class_10_publish_p99_ms", "publish p99, 10 objects", "ms")
        row("burst_100_publish_p99_ms", "100 publishes at once: p99", "ms", 0.5)
        row("cpu_per_publish_unpublish_ms", "CPU per publish + unpublish", "ms", 0.5)
        row("start_to_probe_ms", "start → first Probe", "ms")
        row("keyvault_requests_per_publish", "Key Vault requests per publish (10 objects)", "")
        rotation = rows.get("rotation_keyvault_requests_per_cycle")
        if rotation:
            distinct = upstream.get("objects_per_volume") or 10
            table.add(
                f"Key Vault requests per rotation cycle, {volumes} volumes sharing {distinct} objects",
                rotation.get("ours"),
                rotation.get("theirs"),
                "",
                f"= {distinct} (distinct objects)",
                None if rotation.get("ours") is None else rotation.get("ours") == distinct,
            )

    footprint = load(args.dir, "node-footprint.json")
    if footprint:
        overall = footprint["summary"]["overall"]["working_set"]
        ws_ours, ws_theirs = overall.get("ours"), overall.get("upstream")
        if ws_ours is not None and ws_theirs is not None:
            table.add(
                f"node footprint, working set, {footprint.get('pods')} pods via kubelet (ours 1 container, upstream 4)",
                ws_ours / MIB,
                ws_theirs / MIB,
                "MiB",
                "≤ 0.35×",
                at_most(ratio(ws_ours, ws_theirs), 0.35),
            )
        sources.append(f"node footprint (benchmarks/node_footprint.py, {len(footprint.get('results', [])) // 2} rounds a layout)")

    twenty = load(args.dir, "twenty-nodes.json")
    if twenty:
        figures = twenty["figures"]

        def first(prefix):
            return next((f for f in figures if f["figure"].startswith(prefix)), None)

        def add(prefix, figure, unit, target=None, met_rule=None):
            found = first(prefix)
            if not found:
                return
            ours, theirs = found.get("ours"), found.get("upstream")
            met = met_rule(ours, theirs) if met_rule and ours is not None and theirs is not None else None
            table.add(figure, ours, theirs, unit, target, met)

        a = twenty["args"]
        nodes, pods, classes = a.get("nodes"), a.get("pods"), a.get("classes")
        add("requests per node per minute, idle", f"API requests per node per minute, idle ({nodes} nodes, {pods} pods)", "", "≤ upstream", lambda o, t: o <= t)
        add("requests per pod start", "API requests per pod start", "")
        add("requests per node per minute, rotation window", "API requests per node per minute, during a rotation", "")
        add("watches held per node", "watches held per node", "")
        add("requests per node during creation", f"API requests per node while {classes} classes are created", "")
        add("working set MiB per node, started", "working set per node, no pods yet", "MiB")
        add(f"working set MiB per node, {pods} pods (", f"working set per node, {pods} pods", "MiB")
        add(f"working set MiB per node, {pods} pods +", f"working set per node, {pods} pods + {classes} classes", "MiB")
        sources.append(f"{nodes} nodes (benchmarks/twenty_nodes.py: {nodes} hollow kubelets, {pods} pods, {classes} classes)")

    text = table.markdown() + "\n\nSources: " + "; ".join(sources) + ".\n"
    with open(os.path.join(args.dir, "side-by-side.md"), "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
