"""A dump onto a real, tiny tmpfs: run inside ``unshare --user --map-root-user --mount``.

    python softlabels_reliability_tmpfs.py MOUNT SAVE KIND SMALL BIG

Mounts a tmpfs of ``SMALL`` bytes at ``MOUNT`` (a private mount namespace: nothing outside
sees it), runs the dump of ``KIND`` onto it (the command line, in-process), copies what it
left to ``SAVE/full.slc``, grows the tmpfs to ``BIG`` (``mount -o remount``), reruns the same
command, copies the result to ``SAVE/resumed.slc`` and prints one JSON line: both exit codes
and stderr, the files committed before the fault, and which of them were lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from softlabels_reliability_faults import committed_snapshot, dump_args, invoke, lost


def main() -> None:
    mount, save, kind, small, big = sys.argv[1:6]
    mnt, dst = Path(mount), Path(save)
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={small}", "tmpfs", str(mnt)], check=True)
    out = mnt / "c.slc"
    first = invoke(*dump_args(out, kind), "--json")
    snapshot = committed_snapshot(out)
    if out.exists():
        shutil.copytree(out, dst / "full.slc")
    subprocess.run(["mount", "-o", f"remount,size={big}", str(mnt)], check=True)
    second = invoke(*dump_args(out, kind), "--json")
    if out.exists():
        shutil.copytree(out, dst / "resumed.slc")
    report = {
        "first": {"exit": first.exit_code, "stderr": first.stderr, "stdout": first.stdout[-500:]},
        "second": {"exit": second.exit_code, "stderr": second.stderr[-1000:]},
        "committed_before": sorted(k for k in snapshot if k.startswith("manifest/chunk-")),
        "lost": lost(snapshot, out),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
