"""Plots GET throughput by blob size for every system in a benchmark result file."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

source, target = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as handle:
    results = json.load(handle)

# Loaded runs only (one-connection runs measure latency); the modelled-S3 section's too.
loaded = [row for row in results["rows"] + results.get("honest", {}).get("rows", []) if row["op"] == "GET" and row["connections"] > 1]
figure, axis = plt.subplots(figsize=(8, 5))
systems = sorted({row["system"] for row in loaded})
for system in systems:
    rows = sorted((row for row in loaded if row["system"] == system), key=lambda row: row["size"])
    axis.plot([row["size"] for row in rows], [row["megabytesPerSecond"] for row in rows], marker="o", label=system)
axis.set_xscale("log", base=2)
axis.set_yscale("log")
axis.set_xlabel("blob size (bytes)")
axis.set_ylabel("GET throughput (MB/s)")
axis.set_title(f"GET throughput by blob size — {results['date'][:10]}, {results['machine']['cpus']} CPUs")
axis.grid(True, which="both", alpha=0.3)
axis.legend()
figure.tight_layout()
figure.savefig(target, dpi=110)
