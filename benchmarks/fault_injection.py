"""Fault injection for issue 7: randomized kill -9, damage, full-disk trials; counts printed.

    .venv/bin/python benchmarks/fault_injection.py --trials 20 --seed 0

Each part runs the real command line (``python -m softlabels`` in a subprocess for the kills,
the same Typer app in-process for everything else) on a tiny long-tailed MNIST-1D
(159 samples, 5 chunks of 32 rows), CPU:

* kill: per cache kind (one teacher, two teachers, ``--views 3``, ``--views 2 --topk 3``), ``--trials`` dumps killed
  with SIGKILL (trial 0 as soon as the lock exists, before any commit; trial 1 inside the last
  chunk; the rest after a seeded uniform delay over the chunk loop), then the same command
  again, with no flag (the killed writer's lock died with it); the cache must equal an
  uninterrupted dump byte for byte, and every file committed before the kill must be
  unchanged.
* s3: the same kill trials (``--s3-trials`` per kind) on ``s3://`` against a local S3
  server (moto, 127.0.0.1; skipped without ``moto[server]`` and ``s3fs``): the rerun takes
  over the lease of the dead writer of this host at once.
* repeat: one local cache, the same command SIGKILLed ``--repeat-kills`` times at random
  moments, each run resuming the last, then run to its end: the bytes of an uninterrupted dump.
* damage: ``--damage-trials`` copies of a reference cache with 1-4 random files damaged
  (byte flipped, truncated, deleted; chunk files, Parquet tables, metadata, manifest
  records); ``verify`` must name each; when teacher ``a``'s logits are among them, ``distill``
  and ``tune-tau`` must refuse with one line.
* enospc: every write of a dump (chunk files, records, tables, zarr metadata) failed in turn
  with ENOSPC (half a file left behind), per kind; one error line, exit 1, nothing committed
  lost, and the same command resumes to the reference bytes.
* tmpfs: ``--tmpfs-trials`` dumps onto a real tmpfs in a private mount namespace (skipped where
  ``unshare`` cannot mount one), of a random size below what the cache needs, grown to 8 MiB
  afterwards, then the same command again.
* distill: ``--distill-trials`` distills killed after a checkpoint and resumed; weights must
  equal an uninterrupted run.

"data lost" counts files committed before a fault that are missing or changed afterwards.
Prints a table and one JSON line (also written to ``--report`` when given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reliability"))
sys.path.insert(0, str(HERE.parent / "tests" / "s3"))

import softlabels_reliability_faults as F  # noqa: E402
import softlabels_s3_server as S3  # noqa: E402

DISTILL_EPOCHS = 6


def _reference(work: Path, kind: str) -> Path:
    out = work / "reference" / f"{kind}.slc"
    result = F.invoke(*F.dump_args(out, kind), "--json")
    if result.exit_code != 0:
        raise SystemExit(f"reference dump {kind} failed: {result.stderr}")
    return out


def kill_trials(
    work: Path,
    refs: dict[str, Path],
    trials: int,
    rng: random.Random,
    sleep: float,
    s3: Any = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    section = "s3" if s3 else "kill"
    for kind in F.KINDS:
        for i in range(trials):
            strategy = "early" if i == 0 else "last" if i == 1 else "random"
            target = work / section / f"{kind}-{i}.slc"
            target.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            try:
                trial = F.run_kill_trial(
                    target, refs[kind], kind, strategy, rng, sleep=sleep, s3=s3
                )
                row = trial.to_dict()
            except Exception as exc:  # a harness failure is a failed trial, not a crash
                row = {
                    "kind": kind,
                    "strategy": strategy,
                    "ok": False,
                    "killed": False,
                    "lost": [],
                    "note": f"{type(exc).__name__}: {exc}",
                    "seconds": round(time.monotonic() - t0, 2),
                }
            out.append(row)
            flag = "ok" if row["ok"] else "FAIL"
            print(
                f"  {section} {kind:6s} #{i:02d} {strategy:6s} {row.get('anchor', '?'):27s} "
                f"+{row.get('delay', 0):5.3f}s "
                f"killed={row['killed']!s:5s} commits={row.get('commits_before', '-')} "
                f"{flag} {row.get('note', '')[:120]}",
                flush=True,
            )
            F.Where(target, s3).remove()
    return out


def s3_kill_trials(
    work: Path, refs: dict[str, Path], trials: int, rng: random.Random, sleep: float
) -> tuple[list[dict[str, Any]], str | None]:
    why = S3.available()
    if why or trials <= 0:
        return [], why or "--s3-trials 0"
    server = S3.start()
    try:
        with server.configure():
            return kill_trials(work, refs, trials, rng, sleep, s3=server), None
    finally:
        server.stop()


def repeat_trial(
    work: Path, refs: dict[str, Path], kills: int, rng: random.Random, sleep: float
) -> list[dict[str, Any]]:
    if kills <= 0:
        return []
    result = F.run_repeated_kills(work / "repeat" / "views.slc", refs["views"], "views", kills,
                                  rng, sleep=sleep)  # fmt: skip
    row = result.to_dict()
    print(
        f"  repeat: {row['delivered']} of {kills} kills delivered, commits at each kill "
        f"{row['commits_at_kill']}, rerun {row['resumed_status']}, "
        f"{'ok' if row['ok'] else 'FAIL ' + str(row['differences'][:3]) + row['note']}",
        flush=True,
    )
    shutil.rmtree(work / "repeat", ignore_errors=True)
    return [row]


def damage_trials(
    work: Path, refs: dict[str, Path], trials: int, rng: random.Random
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(trials):
        kind = rng.choice(list(F.KINDS))
        root = work / "damage" / f"{i}.slc"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(refs[kind], root)
        targets = F.damage_targets(root)
        chosen = rng.sample(targets, rng.randint(1, 4))
        # Damage files first, records last (a record's own entries stay what was committed).
        chosen.sort(key=lambda t: t.kind == "record")
        done = [F.damage(root, t, rng.choice(F.DAMAGES), rng) for t in chosen]
        code, problems = F.verify_json(root)
        named = [F.detected(problems, t) for t in chosen]
        row: dict[str, Any] = {
            "kind": kind,
            "damages": done,
            "verify_exit": code,
            "named": sum(named),
            "missed": [d for d, ok in zip(done, named, strict=True) if not ok],
        }
        # What distill and tune-tau read of teacher a: its logits chunks (a sparse teacher's
        # top-k values, ids, rest and rest profile), their records, metadata.
        read = (
            "teachers/a/logits",
            *(f"teachers/a/topk/{w}" for w in ("values", "indices", "rest", "profile")),
        )
        logits = [
            t
            for t in chosen
            if t.where.startswith(read) or (t.kind == "record" and any(r in t.covers for r in read))
        ]
        if logits:
            readers = {
                "distill": F.invoke(
                    "distill", root, "--dataset", F.DATASET, "--method", "kd", "--teacher", "a",
                    "--epochs", 1, "--out", root.parent / f"run-{i}", "--device", "cpu",
                    "--no-plots", catch=True,
                ),
                "tune-tau": F.invoke(
                    "tune-tau", root, "--teacher", "a", "--taus", "2", "--dry-run", "--device",
                    "cpu", catch=True,
                ),
            }  # fmt: skip
            refused = {}
            for name, res in readers.items():
                lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
                refused[name] = (
                    res.exit_code == 2
                    and (res.exception is None or isinstance(res.exception, SystemExit))
                    and len([ln for ln in lines if ln.startswith("error:")]) == 1
                    and lines[-1].startswith("error:")
                )
                if not refused[name]:
                    what = repr(res.exception) if res.exception else res.stderr.strip()[-200:]
                    row.setdefault("readers_failed", {})[name] = f"exit {res.exit_code}: {what}"
            row["readers_refused"] = refused
        row["ok"] = code == 1 and not row["missed"] and all(row.get("readers_refused", {}).values())
        out.append(row)
        if not row["ok"]:
            print(
                f"  damage #{i:02d} {kind}: {done} MISSED {row['missed']} readers "
                f"{row.get('readers_failed')}",
                flush=True,
            )
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root.parent / f"run-{i}", ignore_errors=True)
    return out


def enospc_trials(work: Path, refs: dict[str, Path], stride: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in F.KINDS:
        keys = F.count_writes(work / "enospc" / f"count-{kind}.slc", kind)
        for k in range(0, len(keys), stride):
            target = work / "enospc" / f"{kind}-{k}.slc"
            row = F.run_disk_full_trial(target, refs[kind], kind, k).to_dict()
            row["key"] = keys[k]
            out.append(row)
            if not row["ok"]:
                print(
                    f"  enospc {kind:6s} write {k:3d} ({keys[k]}): FAIL exit {row['exit_code']}"
                    f" resume {row['resumed_exit']} {row['resumed_error'][:100]} "
                    f"diff {row['differences'][:3]}",
                    flush=True,
                )
            shutil.rmtree(target, ignore_errors=True)
    return out


def tmpfs_trials(
    work: Path, refs: dict[str, Path], trials: int, rng: random.Random
) -> tuple[list[dict[str, Any]], str | None]:
    why = F.tmpfs_available()
    if why:
        return [], why
    out: list[dict[str, Any]] = []
    for i in range(trials):
        kind = rng.choice(list(F.KINDS))
        # KiB, below what the complete cache takes on tmpfs (whole 4 KiB pages per file): the
        # disk fills at a random point, from creating the cache to its last chunk.
        full = sum(-(-p.stat().st_size // 4096) * 4 for p in refs[kind].rglob("*") if p.is_file())
        size = rng.randrange(8, int(0.95 * full), 4)
        save = work / "tmpfs" / f"{i}"
        save.mkdir(parents=True, exist_ok=True)
        cmd = [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            sys.executable,
            str(F.HERE / "softlabels_reliability_tmpfs.py"),
            str(work / "tmpfs" / f"mnt{i}"),
            str(save),
            kind,
            f"{size}k",
            "8m",
        ]
        proc = subprocess.run(
            cmd, env=F.subprocess_env(), capture_output=True, text=True, timeout=600, check=False
        )
        row: dict[str, Any] = {"kind": kind, "size_kib": size}
        try:
            rep = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            row.update(ok=False, note=proc.stderr[-500:], lost=[])
            out.append(row)
            continue
        lines = [ln for ln in rep["first"]["stderr"].splitlines() if ln.strip()]
        row["first_exit"] = rep["first"]["exit"]
        row["error"] = lines[-1] if lines else ""
        row["committed_before"] = len(rep["committed_before"])
        row["lost"] = rep["lost"]
        row["resumed_exit"] = rep["second"]["exit"]
        resumed = save / "resumed.slc"
        row["differences"] = (
            F.compare_with_reference(resumed, refs[kind]) if resumed.exists() else ["no cache"]
        )
        filled = rep["first"]["exit"] != 0
        row["disk_filled"] = filled
        row["ok"] = (
            (
                not filled
                or (
                    rep["first"]["exit"] == 1
                    and len(lines) == 1
                    and "No space left on device" in lines[0]
                )
            )
            and row["resumed_exit"] == 0
            and not row["differences"]
            and not row["lost"]
        )
        if not row["ok"]:
            print(
                f"  tmpfs {kind} {size} KiB: FAIL {row['error'][:150]} resume "
                f"{row['resumed_exit']} {rep['second']['stderr'][-150:]} diff "
                f"{row['differences'][:3]}",
                flush=True,
            )
        out.append(row)
        shutil.rmtree(save, ignore_errors=True)
    return out, None


def distill_trials(work: Path, ref: Path, trials: int, rng: random.Random) -> list[dict[str, Any]]:
    import torch

    def args(out: Path) -> list[str]:
        return [
            "distill",
            str(ref),
            "--dataset",
            F.DATASET,
            "--method",
            "kd",
            "--teacher",
            "a",
            "--epochs",
            str(DISTILL_EPOCHS),
            "--batch-size",
            "32",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--no-plots",
            "--eval-every",
            "3",
        ]

    whole = work / "distill" / "whole"
    assert F.invoke(*args(whole)).exit_code == 0
    want = torch.load(whole / "student" / "model.pt", weights_only=True)["state_dict"]
    out: list[dict[str, Any]] = []
    for i in range(trials):
        cut = work / "distill" / f"cut{i}"
        state = cut / "student" / "state.pt"
        cmd = [sys.executable, "-m", "softlabels", *args(cut)]
        with subprocess.Popen(
            cmd, env=F.subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            try:
                F.wait_for(state.exists, proc, "first checkpoint")
                time.sleep(rng.uniform(0.0, 0.3))
                killed = proc.poll() is None
            finally:
                proc.kill()
                proc.wait()
        epochs = torch.load(state, weights_only=True)["epochs_done"]
        resumed = F.invoke(*args(cut))
        got = torch.load(cut / "student" / "model.pt", weights_only=True)["state_dict"]
        same = got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
        row = {
            "killed": killed,
            "epochs_done_at_kill": epochs,
            "resumed_exit": resumed.exit_code,
            "same_weights": same,
            "ok": killed and resumed.exit_code == 0 and same,
        }
        print(f"  distill #{i} killed after epoch {epochs}: same weights {same}", flush=True)
        out.append(row)
        shutil.rmtree(cut, ignore_errors=True)
    return out


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials per cache kind")
    parser.add_argument(
        "--s3-trials", type=int, default=None, help="kill -9 trials per kind on s3:// (--trials)"
    )
    parser.add_argument(
        "--repeat-kills", type=int, default=20, help="kills of one cache, each rerun (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damage-trials", type=int, default=None, help="default: 3 x --trials")
    parser.add_argument(
        "--enospc-stride",
        type=int,
        default=1,
        help="inject ENOSPC at every N-th write (1: every write)",
    )
    parser.add_argument("--tmpfs-trials", type=int, default=9)
    parser.add_argument("--distill-trials", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.04, help="teacher sleep per batch (s)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--report", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="softlabels-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    print(f"work folder {work}", flush=True)
    refs = {kind: _reference(work, kind) for kind in F.KINDS}
    results: dict[str, Any] = {}
    sections = [
        ("kill", lambda: kill_trials(work, refs, args.trials, rng, args.sleep)),
        (
            "s3",
            lambda: s3_kill_trials(work, refs, _or(args.s3_trials, args.trials), rng, args.sleep),
        ),
        ("repeat", lambda: repeat_trial(work, refs, args.repeat_kills, rng, args.sleep)),
        ("damage", lambda: damage_trials(work, refs, args.damage_trials or 3 * args.trials, rng)),
        ("enospc", lambda: enospc_trials(work, refs, args.enospc_stride)),
        ("tmpfs", lambda: tmpfs_trials(work, refs, args.tmpfs_trials, rng)),
        ("distill", lambda: distill_trials(work, refs["views"], args.distill_trials, rng)),
    ]
    skipped: dict[str, str] = {}
    for name, run in sections:
        s0 = time.monotonic()
        print(f"{name} ...", flush=True)
        try:
            got = run()
        except Exception:
            traceback.print_exc()
            got = []
            skipped[name] = "harness error (see traceback)"
        if name in ("tmpfs", "s3"):
            got, why = got if isinstance(got, tuple) else (got, None)
            if why:
                skipped[name] = why
        results[name] = got
        print(f"{name}: {len(got)} trials in {time.monotonic() - s0:.0f} s", flush=True)

    kills = results["kill"]
    s3_kills = results["s3"]
    repeat = results["repeat"]
    damage = results["damage"]
    enospc = results["enospc"]
    tmpfs = results["tmpfs"]
    distill = results["distill"]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "seconds": round(time.monotonic() - t0),
        "kill": {
            "trials": len(kills),
            "by_kind": dict(Counter(r["kind"] for r in kills)),
            "signals_delivered": sum(bool(r["killed"]) for r in kills),
            "commits_before_kill": dict(Counter(r.get("commits_before") for r in kills)),
            "anchors": dict(Counter(r.get("anchor") for r in kills)),
            "failed": [
                (r["kind"], r.get("anchor"), r.get("delay"), r.get("note", "")[:200])
                for r in kills
                if not r["ok"]
            ],
            "ok": sum(r["ok"] for r in kills),
            "data_lost": sum(len(r["lost"]) for r in kills),
        },
        "s3": {
            "trials": len(s3_kills),
            "signals_delivered": sum(bool(r["killed"]) for r in s3_kills),
            "commits_before_kill": dict(Counter(r.get("commits_before") for r in s3_kills)),
            "rerun_notes": sum(len(r.get("rerun_notes", [])) for r in s3_kills),
            "failed": [
                (r["kind"], r.get("anchor"), r.get("delay"), r.get("note", "")[:200])
                for r in s3_kills
                if not r["ok"]
            ],
            "ok": sum(r["ok"] for r in s3_kills),
            "data_lost": sum(len(r["lost"]) for r in s3_kills),
        },
        "repeat": {
            "trials": len(repeat),
            "kills": sum(r["kills"] for r in repeat),
            "signals_delivered": sum(r["delivered"] for r in repeat),
            "commits_at_kill": [c for r in repeat for c in r["commits_at_kill"]],
            "byte_identical": sum(r["resumed_exit"] == 0 and not r["differences"] for r in repeat),
            "ok": sum(r["ok"] for r in repeat),
            "data_lost": sum(len(r["lost"]) for r in repeat),
        },
        "damage": {
            "trials": len(damage),
            "files_damaged": sum(len(r["damages"]) for r in damage),
            "named_by_verify": sum(r["named"] for r in damage),
            "missed": [m for r in damage for m in r["missed"]],
            "reader_checks": sum(len(r.get("readers_refused", {})) for r in damage),
            "readers_refused": sum(sum(r.get("readers_refused", {}).values()) for r in damage),
            "ok": sum(r["ok"] for r in damage),
        },
        "enospc": {
            "trials": len(enospc),
            "one_line_exit_1": sum(
                r["exit_code"] == 1 and r["error"].startswith("error:") and "\n" not in r["error"]
                for r in enospc
            ),
            "resumed": sum(r["resumed_exit"] == 0 for r in enospc),
            "ok": sum(r["ok"] for r in enospc),
            "failed_at": [(r["kind"], r["fail_at"], r["key"]) for r in enospc if not r["ok"]],
            "data_lost": sum(len(r["lost"]) for r in enospc),
        },
        "tmpfs": {
            "trials": len(tmpfs),
            "disk_filled": sum(bool(r.get("disk_filled")) for r in tmpfs),
            "ok": sum(r["ok"] for r in tmpfs),
            "failed": [(r["kind"], r["size_kib"]) for r in tmpfs if not r["ok"]],
            "data_lost": sum(len(r["lost"]) for r in tmpfs),
        },
        "distill": {
            "trials": len(distill),
            "ok": sum(r["ok"] for r in distill),
            "killed_after_epoch": [r["epochs_done_at_kill"] for r in distill],
        },
        "skipped": skipped,
    }
    sections_run = ("kill", "s3", "repeat", "damage", "enospc", "tmpfs", "distill")
    trials = sum(summary[s]["trials"] for s in sections_run)
    faults = (
        summary["kill"]["signals_delivered"]
        + summary["s3"]["signals_delivered"]
        + summary["repeat"]["signals_delivered"]
        + summary["damage"]["files_damaged"]
        + summary["enospc"]["trials"]
        + summary["tmpfs"]["disk_filled"]
        + sum(bool(r["killed"]) for r in distill)
    )
    detected = (
        summary["damage"]["named_by_verify"]
        + summary["enospc"]["one_line_exit_1"]
        + sum(
            bool(r.get("disk_filled")) and r["first_exit"] == 1 and r["error"].startswith("error:")
            for r in tmpfs
        )
    )
    lost = summary["kill"]["data_lost"] + summary["enospc"]["data_lost"]
    lost += summary["s3"]["data_lost"] + summary["repeat"]["data_lost"]
    lost += summary["tmpfs"]["data_lost"]
    summary["totals"] = {
        "trials_run": trials,
        "faults_injected": faults,
        "detected_or_reported": detected,
        "detectable": summary["damage"]["files_damaged"]
        + summary["enospc"]["trials"]
        + summary["tmpfs"]["disk_filled"],
        "data_lost": lost,
        "trials_ok": sum(summary[s]["ok"] for s in sections_run),
    }
    print()
    print(f"trials run        {trials}")
    for name in sections_run:
        print(f"  {name:8s} {json.dumps(summary[name])}")
    print(f"faults injected   {faults}")
    print(
        f"detected/reported {detected} of {summary['totals']['detectable']} detectable "
        f"(damaged files + ENOSPC + filled tmpfs)"
    )
    print(f"trials ok         {summary['totals']['trials_ok']} of {trials}")
    print(f"data lost         {lost}")
    if skipped:
        print(f"skipped           {skipped}")
    line = json.dumps(summary)
    print(line)
    if args.report:
        args.report.write_text(
            json.dumps({"summary": summary, "results": results}, indent=1, default=str)
        )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
