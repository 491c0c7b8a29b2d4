"""An attack run (issue 14): hostile inputs and faults across every command, with totals.

    PYTHONPATH=. python benchmarks/attack.py [--json docs/benchmarks/attack.json]

Each attack runs one latbench command (in-process through typer's CliRunner, where any exception
but SystemExit is a traceback; a few in a subprocess, for encodings, closed pipes and signals) and
is scored:

- clean error: exit 2 and one `error:` line on stderr;
- traceback: an exception escaped, or 'Traceback' was printed;
- result lost: an earlier run's files changed, or a run that hit a fault lost its finished groups or
  was left without a final status;
- gate pass on broken input: `latbench gate` exited 0 on a damaged results file.

Timed by the fake backend (LATBENCH_FAKE_BACKEND=1): this is about answers and files, not times.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/faults_factory.py: the hostile user modules
os.environ["LATBENCH_FAKE_BACKEND"] = "1"
os.environ.pop("GITHUB_STEP_SUMMARY", None)

from typer.testing import CliRunner  # noqa: E402

from latbench.cli import app  # noqa: E402
from latbench.results import files as results_files  # noqa: E402

TINY = ROOT / "tests" / "data" / "tiny.yaml"


@dataclass
class Tally:
    tried: int = 0
    clean_errors: int = 0
    tracebacks: int = 0
    results_lost: int = 0
    gate_passes_on_broken_input: int = 0
    other_wrong_exit: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, kind: str, name: str, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.failures.append(f"{kind}: {name}: {detail[-300:]}")


T = Tally()


def snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def invoke(name: str, args: list[str], expect: set[int], *, broken_gate: bool = False) -> object:
    """One attack through the CLI; scores it and returns the result."""
    T.tried += 1
    r = CliRunner().invoke(app, args)
    text = r.output
    if (r.exception is not None and not isinstance(r.exception, SystemExit)) or "Traceback" in text:
        T.fail("tracebacks", name, f"{r.exception!r} {text}")
    elif broken_gate and args[0] == "gate" and r.exit_code == 0:
        T.fail("gate_passes_on_broken_input", name, text)
    elif r.exit_code not in expect:
        T.fail("other_wrong_exit", name, f"exit {r.exit_code}, expected {sorted(expect)}: {text}")
    elif r.exit_code == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        if len(lines) == 1 and lines[0].startswith("error: "):
            T.clean_errors += 1
        elif "Invalid value" in r.stderr or "Missing" in r.stderr or "No such option" in r.stderr:
            T.clean_errors += 1  # typer's own usage error (a boxed message naming the option), exit 2
        else:
            T.fail("other_wrong_exit", name, f"exit 2 without one error line: {r.stderr}")
    return r


def run_files(d: Path) -> tuple[Path, dict]:
    (csv,) = [p for p in d.glob("*.csv") if not p.name.endswith("-samples.csv")]
    return csv, json.loads(csv.with_suffix(".json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the totals here")
    args = ap.parse_args()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="latbench-attack-") as tmp:
        box = Path(tmp)
        attack(box)
    totals = {k: v for k, v in T.__dict__.items() if k != "failures"}
    totals["seconds"] = round(time.monotonic() - start, 1)
    print(json.dumps(totals, indent=2))
    for f in T.failures:
        print("  " + f)
    if args.json:
        args.json.write_text(json.dumps({**totals, "failures": T.failures}, indent=2) + "\n")
    return 0 if not (T.tracebacks or T.results_lost or T.gate_passes_on_broken_input) else 1


def attack(box: Path) -> None:
    good = box / "good"
    r = CliRunner().invoke(app, ["run", str(TINY), "--quick", "--no-roofline", "-q", "--results-dir", str(good)])
    assert r.exit_code == 0, r.output
    good_csv, _ = run_files(good)
    kept = snapshot(good)
    n = [0]

    def fresh(name: str) -> Path:
        n[0] += 1
        return box / f"{name}-{n[0]}"

    # ---- run: bad options, bad places to write, bad suites
    quick = ["--quick", "--no-roofline", "-q"]
    for extra in (["--seed", "-1"], ["--seed", str(10**23)], ["--seed", "1e23"], ["--case-timeout", "nan"],
                  ["--max-time", "inf"], ["--max-time", "nan"], ["--max-time", "0"], ["--min-time", "inf"],
                  ["--target", "nan"], ["--target", "0"], ["--threads", "0"], ["--batch", "0"], ["--batch", "-3"],
                  ["--modes", "bogus"], ["--modes", ",,,"], ["--device", "cuda"], ["--device", "tpu"],
                  ["--schedule", "x"], ["--widths", "x"], ["--platform", "x"], ["--max-cases", "-1"],
                  ["--max-cases", "1"], ["--resume", str(box / "nope.csv")],
                  ["--resume", str(good_csv.with_name(good_csv.stem + "-samples.csv"))],
                  ["--resume", str(good_csv.with_suffix(".json"))]):
        invoke(f"run {extra}", ["run", str(TINY), *quick, "--results-dir", str(fresh("r")), *extra], {2})
    again = fresh("again")  # resuming a complete run (a copy: it records resumed_at_utc) changes no row
    shutil.copytree(good, again)
    again_csv = again / good_csv.name
    invoke("run --resume of a complete run", ["run", str(TINY), *quick, "--results-dir", str(again), "--resume",
                                              str(again_csv)], {0})
    if again_csv.read_bytes() != good_csv.read_bytes():
        T.fail("results_lost", "resume of a complete run", "its rows changed")
    afile = box / "a-file"
    afile.write_text("x\n")
    dangling = box / "dangling"
    dangling.symlink_to(box / "nowhere")
    for d in (afile, dangling, Path("/dev/null"), afile / "sub", box / ("d" * 300), Path("/proc/self")):
        invoke(f"run --results-dir {d.name[:20]}", ["run", str(TINY), *quick, "--results-dir", str(d)], {2})
    suites = {
        "missing": None, "directory": box, "/proc/self/mem": Path("/proc/self/mem"), "/dev/zero": Path("/dev/zero"),
        "empty": "", "binary": b"\x00\xff\xfe" * 50, "not utf-8": "suite: \xe9".encode("latin-1"),
        "a list": "- 1\n- 2\n", "garbage yaml": "{{{: ]]]", "300-char name": TINY.read_text().replace(
            "suite: tiny", "suite: " + "a" * 300), "bad builder": TINY.read_text().replace("g2_group_conv", "nope"),
        "40,000-point sweep": TINY.read_text() + "sweep: {batch: [%s], threads: [%s]}\n" % (
            ",".join(map(str, range(1, 201))), ",".join(map(str, range(1, 201)))),
        "absurd widths": TINY.read_text().replace("c: 8}, arm: {c: 8}}\n  - name: g=2", "c: 8}, arm: {c: 8}}\n  - name: g=2", 1
                                                  ).replace("{gpu: {c: 8}, arm: {c: 8}}", "{gpu: {c: 100000000000000000000}, arm: {c: 100000000000000000000}}"),
        "negative scale": TINY.read_text().replace("scales: [1, 2, 3, 4]", "scales: [-1]"),
        "huge input": TINY.read_text().replace("height: 8, width: 8", "height: 100000000, width: 100000000"),
        "user code without --allow-import": "suite: u\nexperiment: U\nbuilder: user\ncases:\n  - name: a\n    params: "
                                            "{factory: 'os:system', input_shape: [1]}\n",
        "anchors bomb": "a: &a [1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\n"
                        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d]\n",
    }
    for name, content in suites.items():
        if content is None or isinstance(content, Path):
            path = content or box / "missing.yaml"
        else:
            path = box / f"suite-{len(name)}-{n[0]}.yaml"
            n[0] += 1
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        out = fresh("s")
        r = invoke(f"run suite {name}", ["run", str(path), *quick, "--results-dir", str(out)], {1, 2})
        if r.exit_code == 1:  # ran: the failed cases must be rows, the run complete
            csv, meta = run_files(out)
            if meta.get("status") != "complete":
                T.fail("results_lost", f"run suite {name}", f"status {meta.get('status')}")

    # ---- run: user code that fails while counted, built or timed (in-process and --isolate)
    user = ("suite: u\nexperiment: U\nbuilder: user\nblocks: 1\ncases:\n"
            "  - name: ok\n    params: {factory: 'faults_factory:forward', kwargs: {c: 4}, input_shape: [4, 6, 6]}\n"
            "  - name: bad\n    params: {factory: 'faults_factory:FACTORY', kwargs: KWARGS, input_shape: [4, 6, 6]}\n"
            "  - name: ok2\n    params: {factory: 'faults_factory:forward', kwargs: {c: 4}, input_shape: [4, 6, 6]}\n")
    faults_in_cases = [("forward", "{c: 4, action: %s}" % a, []) for a in ("raise", "exit0", "exit3", "base", "loop")]
    faults_in_cases += [(f, "{c: 4}", []) for f in ("factory_raises", "factory_exits", "not_a_module")]
    faults_in_cases += [("forward", "{c: 4, action: %s}" % a, ["--isolate"]) for a in ("segfault", "os_exit", "stuck",
                                                                                      "raise", "exit3")]
    for factory, kwargs, extra in faults_in_cases:
        path = box / f"user-{n[0]}.yaml"
        n[0] += 1
        path.write_text(user.replace("FACTORY", factory).replace("KWARGS", kwargs))
        out = fresh("u")
        name = f"user {factory} {kwargs} {extra}"
        r = invoke(name, ["run", str(path), *quick, "--allow-import", "--case-timeout", "3", "--results-dir", str(out),
                          *extra], {1})
        if r.exit_code == 1:
            import pandas as pd

            csv, meta = run_files(out)
            rows = pd.read_csv(csv, keep_default_na=False).set_index("case")
            if meta.get("status") != "complete" or list(rows["status"]) != ["ok", "failed", "ok"]:
                T.fail("results_lost", name, f"status {meta.get('status')}, rows {list(rows['status'])}")

    # ---- run: the disk fills up after the first group; then space is freed and the run resumed
    real = results_files._atomic_write_text
    writes = [0]

    def full_after_one_group(path: Path, text: str) -> None:
        if path.suffix == ".csv" and not path.name.endswith("-samples.csv"):
            writes[0] += 1
            if writes[0] >= 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, text)

    out = fresh("full")
    results_files._atomic_write_text = full_after_one_group
    try:
        invoke("run, disk full after one group", ["run", str(TINY), "--max-time", "0.05", "--no-roofline", "-q",
                                                  "--results-dir", str(out)], {2})
    finally:
        results_files._atomic_write_text = real
    csv, meta = run_files(out)
    import pandas as pd

    if meta.get("status") != "interrupted" or len(pd.read_csv(csv)) != 2:
        T.fail("results_lost", "disk full", f"status {meta.get('status')}")
    invoke("run --resume after disk full", ["run", str(TINY), "--max-time", "0.05", "--no-roofline", "-q",
                                            "--results-dir", str(out), "--resume", str(csv)], {0})
    if len(pd.read_csv(csv)) != 8:
        T.fail("results_lost", "resume after disk full", "rows missing")

    # ---- damaged results files: report, compare, gate, calibrate
    damaged = damage(good, box)
    for name, csv in damaged.items():
        invoke(f"gate on {name}", ["gate", "-b", str(good_csv), "-c", str(csv), "-q"], {2}, broken_gate=True)
        invoke(f"gate baseline {name}", ["gate", "-b", str(csv), "-c", str(good_csv), "-q"], {2}, broken_gate=True)
        invoke(f"compare {name}", ["compare", str(good_csv), str(csv), "-q"], {2})
        invoke(f"report {name}", ["report", str(csv), "--out", str(fresh("rep")), "-q"], {0, 2})
        invoke(f"calibrate {name}", ["calibrate", str(good_csv), str(csv), "-q"], {2})
    for name in ("", " ", "..", "../x.yaml", "sub/x.md", "a" * 300):
        invoke(f"report --name {name[:20]!r}", ["report", str(good_csv), "--out", str(fresh("rep")), "--name", name,
                                                "-q"], {2})
    for out in (good_csv, Path("/dev/null"), afile / "sub", dangling):
        invoke(f"report --out {out.name}", ["report", str(good_csv), "--out", str(out), "-q"], {2})
    invoke("report same file twice", ["report", str(good_csv), str(good_csv), "--out", str(fresh("rep")), "-q"], {0})
    for thr in ("", "x: [", "cases: 5", "- 1", "\x00", "cases: {a: abc}"):
        p = box / f"thr-{n[0]}.yaml"
        n[0] += 1
        p.write_text(thr)
        invoke(f"gate --thresholds {thr!r}", ["gate", "-b", str(good_csv), "-c", str(good_csv), "--thresholds", str(p),
                                              "-q"], {2})
    for t in ("abc", "-5", "nan", "inf", "1e308", ""):
        invoke(f"gate --threshold {t!r}", ["gate", "-b", str(good_csv), "-c", str(good_csv), "--threshold", t, "-q"],
               {0, 2})
    for a in ("0", "1", "nan", "-1"):
        invoke(f"gate --alpha {a}", ["gate", "-b", str(good_csv), "-c", str(good_csv), "--alpha", a, "-q"], {2})
    existing = box / "existing.yaml"
    existing.write_text("mine\n")
    for out in (existing, box):
        invoke(f"calibrate --output {out.name}", ["calibrate", str(good_csv), str(good_csv), "--output", str(out)], {2})
    if existing.read_text() != "mine\n":
        T.fail("results_lost", "calibrate --output existing", "overwritten")
    invoke("calibrate --run-args unbalanced", ["calibrate", "--suite", str(TINY), "--run-args", '"unbalanced'], {2})
    invoke("compare nothing", ["compare", str(box / "nothing*.csv")], {2})
    invoke("compare one file", ["compare", str(good_csv)], {2})
    if snapshot(good) != kept:
        T.fail("results_lost", "all attacks", "the good run's files changed")

    # ---- subprocess: odd encodings, a closed stdout, SIGTERM in a sweep and its resume
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    uni = box / "uni.yaml"
    uni.write_text(TINY.read_text().replace("name: g=1", 'name: "g=1 \u2713"'))
    sub("run, PYTHONIOENCODING=ascii", [sys.executable, "-m", "latbench", "run", str(uni), *quick, "--results-dir",
                                        str(fresh("enc"))], {**env, "PYTHONIOENCODING": "ascii"}, {0})
    T.tried += 1
    p = subprocess.run(["bash", "-c", f"{sys.executable} -m latbench gate -b {good_csv} -c {good_csv} -q | true; "
                                      "echo rc=${PIPESTATUS[0]}"], env=env, capture_output=True, text=True)
    if "rc=0" not in p.stdout or "Traceback" in p.stderr:
        T.fail("other_wrong_exit", "gate | true (closed stdout)", p.stdout + p.stderr)
    sigterm_sweep(box, env)


def sub(name: str, cmd: list[str], env: dict, expect: set[int]) -> subprocess.CompletedProcess:
    T.tried += 1
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace")
    if "Traceback" in p.stderr:
        T.fail("tracebacks", name, p.stderr)
    elif p.returncode not in expect:
        T.fail("other_wrong_exit", name, f"exit {p.returncode}: {p.stderr}")
    return p


def sigterm_sweep(box: Path, env: dict) -> None:
    """SIGTERM a sweep run after its first point, run the printed resume command: every point there."""
    import pandas as pd

    suite = box / "sweep.yaml"
    suite.write_text(TINY.read_text().replace("scales: [1, 2, 3, 4]", "scales: [1]\nsweep: {batch: [1, 2], "
                                              "dtype: [float32, bfloat16]}"))
    out = box / "sweep-run"
    env = {**env, "LATBENCH_FAKE_BACKEND": ""}  # real timing: slow enough to interrupt
    T.tried += 1
    proc = subprocess.Popen([sys.executable, "-m", "latbench", "run", str(suite), "--max-time", "0.5", "--no-roofline",
                             "--results-dir", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        metas = []
        for m in out.glob("*.json"):
            try:
                metas.append(json.loads(m.read_text() or "{}"))
            except json.JSONDecodeError:
                pass
        if any(m.get("groups", {}).get("finished") for m in metas):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    if proc.returncode != 143:
        T.fail("other_wrong_exit", "SIGTERM in a sweep", f"exit {proc.returncode}: {err}")
        return
    cmd = next(ln for ln in err.splitlines() if ln.startswith("resume with: ")).removeprefix("resume with: ")
    import shlex

    p = sub("resume of a SIGTERMed sweep", [sys.executable, "-m", "latbench", *shlex.split(cmd)[1:]], env, {0})
    csv = Path(shlex.split(cmd)[-1])
    if p.returncode != 0 or len(pd.read_csv(csv)) != 8:
        T.fail("results_lost", "resume of a SIGTERMed sweep", f"{len(pd.read_csv(csv))} of 8 rows")


def damage(good: Path, box: Path) -> dict[str, Path]:
    """Copies of the good run, each broken in one way that must not pass a gate."""
    out: dict[str, Path] = {}

    def make(name: str, edit: Callable[[Path], None]) -> None:
        d = box / f"damaged-{len(out)}"
        d.mkdir()
        for p in good.iterdir():
            shutil.copy(p, d / p.name)
        csv = next(p for p in d.glob("*.csv") if not p.name.endswith("-samples.csv"))
        edit(csv)
        out[name] = csv

    def cell(column: str, value: str, file: str = "csv") -> Callable[[Path], None]:
        def edit(csv: Path) -> None:
            import pandas as pd

            path = csv if file == "csv" else csv.with_name(csv.stem + "-samples.csv")
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            df.loc[0, column] = value
            df.to_csv(path, index=False)
        return edit

    def meta(key: str, value: object) -> Callable[[Path], None]:
        def edit(csv: Path) -> None:
            m = csv.with_suffix(".json")
            m.write_text(json.dumps({**json.loads(m.read_text()), key: value}))
        return edit

    samples = lambda csv: csv.with_name(csv.stem + "-samples.csv")  # noqa: E731
    make("truncated csv", lambda c: c.write_text(c.read_text()[: len(c.read_text()) // 2]))
    make("empty csv", lambda c: c.write_text(""))
    make("header only", lambda c: c.write_text(c.read_text().splitlines()[0] + "\n"))
    make("no status column", lambda c: c.write_text("\n".join(
        ",".join(x for j, x in enumerate(ln.split(",")) if j != c.read_text().splitlines()[0].split(",").index("status"))
        for ln in c.read_text().splitlines()) + "\n"))
    make("status garbage", cell("status", "weird"))
    make("latency nan", cell("latency_ms", "nan"))
    make("latency -1", cell("latency_ms", "-1"))
    make("latency inf", cell("latency_ms", "inf"))
    make("samples missing", lambda c: samples(c).unlink())
    make("samples empty", lambda c: samples(c).write_text(""))
    make("samples truncated", lambda c: samples(c).write_text(samples(c).read_text()[:200]))
    make("sample latency text", cell("latency_ms", "abc", "samples"))
    make("sample latency -1", cell("latency_ms", "-1", "samples"))
    make("metadata missing", lambda c: c.with_suffix(".json").unlink())
    make("metadata not json", lambda c: c.with_suffix(".json").write_text("{"))
    make("metadata a list", lambda c: c.with_suffix(".json").write_text("[]"))
    make("metadata status running (killed)", meta("status", "running"))
    make("metadata status interrupted", meta("status", "interrupted"))
    make("metadata fingerprint a string", meta("fingerprint", "x"))
    make("metadata device_settings a list", meta("device_settings", [1]))
    make("metadata policy a number", meta("policy", 3))
    make("schema_version 999", cell("schema_version", "999"))
    return out


if __name__ == "__main__":
    sys.exit(main())
