"""Every command line of README.md and docs/*.md, run on the default data with tiny settings.

    python experiments/check_docs.py            # list and run them; a table of PASS / FAIL / NEEDS / SKIP
    python experiments/check_docs.py --list     # only classify (no runs): what would run, what needs what
    python experiments/check_docs.py --only route    # run the lines containing "route" (repeatable)

A command line is a line of a ```bash / ```sh / plain ``` block starting with ``python``,
``bash`` or ``pip`` (``ENV=value`` prefixes allowed; ``\\`` continuations joined). Each one is

- NEEDS: its comment says what it needs beyond the default data (``# ... needs split2``,
  ``needs a GPU``, ``needs SLURM``, ``needs your RouterBench file``); not run here;
- SKIP: installation and the test suite itself (``pip install``, ``python -m pytest``),
  benchmarks (``python benchmarks/...``: their figures are in benchmarks/RESULTS.md), the
  proxy server (``router_lab.serve``: waits for requests; tests/test_serve.py covers it),
  ``mode=interactive``;
- else run, in the repo, with tiny settings: train jobs get ``debug=limit`` (2 epochs of 3
  batches) on a 200/50/100-query synthetic sample, sweeps their first seed only and Optuna 2
  trials, study scripts ``SEEDS=1`` with the same settings; placeholders are filled from
  what earlier lines produced (``<run>``: a run of the default router, ``<time>``: a sweep,
  ``outputs/export/r``: its export, ``route_map=...``: conf/route_maps/example.yaml,
  ``outputs/train/runs`` in a report's roots: the default run).
  PASS when it exits 0, FAIL otherwise (the last output lines are shown).

A line that neither runs nor says what it needs is a FAIL: the docs must say.
Exit status 1 when any line FAILs. Outputs go to a temporary dir (nothing under the repo but
the shared embedding cache).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"^(\w+=\S*\s+)*(python|bash|pip)\b")
TINY_DATA = ["data.train.n_train=200", "data.val.n_val=50", "data.test.test.n_test=100"]


@dataclass
class Line:
    doc: str
    lineno: int
    text: str  # as written (continuations joined)
    status: str = ""  # PASS / FAIL / NEEDS / SKIP / RUN (to run)
    why: str = ""
    seconds: float = 0.0


def command_lines(path: Path) -> list[Line]:
    out, fence, buf, start = [], None, "", 0
    for i, raw in enumerate(path.read_text().splitlines(), 1):
        s = raw.strip()
        if s.startswith("```"):
            fence = None if fence is not None else s[3:].strip().lower()
            continue
        if fence is None or fence not in ("", "bash", "sh", "shell", "console"):
            continue
        if buf:
            buf += " " + s
        elif COMMAND.match(s):
            buf, start = s, i
        else:
            continue
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        out.append(Line(path.name, start, buf))
        buf = ""
    return out


def split_comment(text: str) -> tuple[str, str]:
    """(command, comment) at the first `` #`` outside quotes."""
    quote = None
    for i, ch in enumerate(text):
        if ch in "'\"" and (quote is None or quote == ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def classify(line: Line) -> None:
    cmd, comment = split_comment(line.text)
    needs = re.search(r"\bneeds?\b(.*)", comment)
    if needs:
        line.status, line.why = "NEEDS", "needs" + needs.group(1).split(";")[0].rstrip(")")
    elif cmd.startswith("pip ") or " -m pytest" in f" {cmd}":
        line.status, line.why = "SKIP", "install / the test suite itself"
    elif "benchmarks/" in cmd:
        line.status, line.why = "SKIP", "benchmark script (figures in benchmarks/RESULTS.md)"
    elif "router_lab.serve" in cmd:
        line.status, line.why = "SKIP", "proxy server (waits for requests; tests/test_serve.py)"
    elif "mode=interactive" in cmd:
        line.status, line.why = "SKIP", "interactive"
    elif re.search(r"<(routerbench|arena)[^>]*>|/data/", cmd):
        line.status, line.why = "FAIL", "names a data file but does not say '# needs ...'"
    else:
        line.status = "RUN"


class Runner:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.run_dir: Path | None = None  # a default-router run
        self.sweep_dir: Path | None = None
        self.export_dir = ROOT / "outputs" / "export" / "r"
        self._synth_run: Path | None = None
        self.n = 0

    def env(self) -> dict:
        return os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                             "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}

    def synth_run(self) -> Path:
        """A run of the default synth recipe (what the README's resume / train lines mean by <run>)."""
        if self._synth_run is None:
            runs = ROOT / "outputs" / "synth" / "runs"
            before = set(runs.glob("*")) if runs.is_dir() else set()
            self.call(["python", "-m", "router_lab.synth", "synth.n_items=6"], self.env())
            new = sorted(set(runs.glob("*")) - before)
            self._synth_run = new[-1]
        return self._synth_run

    def default_run(self) -> Path:
        if self.run_dir is None:
            out = self.tmp / "default_run"
            self.call(["python", "-m", "router_lab.train", "debug=limit", "logger=none", *TINY_DATA,
                       f"hydra.run.dir={out}"], self.env())
            self.run_dir = out
        return self.run_dir

    def call(self, argv: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
        res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError((res.stdout + res.stderr).strip().splitlines()[-3:])
        return res

    def prepare(self, cmd: str) -> tuple[list[str], dict]:
        """The argv and environment of a doc line, with tiny settings and placeholders filled."""
        self.n += 1
        env = self.env()
        cmd = re.sub(r"\s+\[[^\]]*\]", "", cmd)  # optional [parts] (not a Hydra list: key=[a,b])
        words = shlex.split(cmd)
        while words and re.match(r"^\w+=", words[0]):
            k, v = words.pop(0).split("=", 1)
            env[k] = v
        out = []
        for w in words:
            if w == "...":
                continue
            w = w.replace("outputs/export/my_router", str(self.export_dir))
            if "outputs/synth/runs/<run>" in w:
                w = w.replace("outputs/synth/runs/<run>", str(self.synth_run()))
            w = w.replace("outputs/train/runs/<run>", "<run>")
            if "<run>" in w:
                w = w.replace("<run>", str(self.default_run()))
            if "<time>" in w:
                w = w.replace("outputs/train/multiruns/<time>", str(self.sweep_dir or self.tmp / "none"))
            w = w.replace("<study>", "synthetic_routers")
            if w.endswith("=..."):
                key = w[:-4]
                w = {"route_map=": "route_map=conf/route_maps/example.yaml",
                     "ckpt_path=": f"ckpt_path={self.default_run()}"}.get(key, w)
            out.append(w)
        words = out
        if words[:3] == ["python", "-m", "router_lab.train"] and "--cfg" not in words and "--info" not in words:
            multirun = "-m" in words[3:] or any(w.startswith("+hparams_search=") for w in words)
            words = [re.sub(r"^(seed=\d+),.*$", r"\1", w) for w in words]  # first seed of a sweep
            data_override = any(re.match(r"^(data|experiment)[=.]", w.lstrip("+")) and w != "data=synthetic"
                                for w in words)
            words += ["debug=limit"] + ([] if data_override else TINY_DATA)
            if not any(w.startswith("logger=") for w in words):
                words.append("logger=none")
            if any(w.startswith("+hparams_search=") for w in words):
                words = [w for w in words if not w.startswith("hydra.sweeper.n_trials=")] + ["hydra.sweeper.n_trials=2"]
            if multirun:
                self.sweep_dir = self.tmp / f"sweep{self.n}"
                words.append(f"hydra.sweep.dir={self.sweep_dir}")
            else:
                words.append(f"hydra.run.dir={self.tmp / f'run{self.n}'}")
        elif words[:3] == ["python", "-m", "router_lab.clusters"]:
            words += ["max_items_per_file=50", f"hydra.run.dir={self.tmp / f'clusters{self.n}'}"]
        elif words[:3] == ["python", "-m", "router_lab.eval"]:
            words = [w.replace("outputs/train/runs/<run>", str(self.default_run())) for w in words]
            words.append(f"hydra.run.dir={self.tmp / f'eval{self.n}'}")
        elif words[:3] == ["python", "-m", "router_lab.export"]:
            words = [w for w in words if not w.startswith("out=")] + [f"out={self.export_dir}", "overwrite=true"]
        elif words[:3] == ["python", "-m", "router_lab.report"]:
            words = [w for w in words if not w.startswith(("out=", "readme="))] + [f"out={self.tmp / 'report'}"]
            if any("outputs/train/runs" in w for w in words):  # single runs: the default run here
                words = [w.replace("outputs/train/runs", str(self.default_run())) for w in words]
        elif words[:2] == ["bash", "experiments/synthetic_routers.sh"]:
            env |= {"SEEDS": "1", "PUBLISH_TO": str(self.tmp / "published_README.md"), "EXTRA": " ".join(["debug=limit", "logger=none", *TINY_DATA]),
                    "OUT": str(self.tmp / "study")}
        elif words[:3] == ["python", "-m", "router_lab.route"] or words[:3] == ["python", "-m", "router_lab.calibrate"]:
            if not self.export_dir.exists():
                self.call(["python", "-m", "router_lab.export", f"ckpt_path={self.default_run()}",
                           f"out={self.export_dir}", "overwrite=true"], env)
            if any(w.startswith("mode=evaluate") for w in words):
                words = [w for w in words if not w.startswith("out=")] + [f"out={self.tmp / f'route_eval{self.n}'}"]
            if words[2] == "router_lab.calibrate":
                words.append("save=false")
        elif words[:3] == ["python", "-m", "router_lab.synth"] and not any(w.startswith("synth.backend=") for w in words):
            words += ["synth.n_items=6"] if "synth.resume_dir" not in cmd else []
        return words, env

    def run(self, line: Line) -> None:
        cmd, _ = split_comment(line.text)
        t0 = time.perf_counter()
        try:
            argv, env = self.prepare(cmd)
            line.why = " ".join(shlex.quote(a) for a in argv)
            self.call(argv, env)
            line.status = "PASS"
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            line.status = "FAIL"
            line.why += f"  -> {e}"
        line.seconds = time.perf_counter() - t0


def main(argv: list[str]) -> int:
    only = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--only"] or None
    lines = [l for doc in DOCS for l in command_lines(doc)]
    for l in lines:
        classify(l)
    tmp = Path(tempfile.mkdtemp(prefix="check_docs_"))
    runner = Runner(tmp)
    try:
        for l in lines:
            if l.status == "RUN" and "--list" not in argv and (only is None or any(o in l.text for o in only)):
                print(f"running {l.doc}:{l.lineno}: {l.text[:100]}", file=sys.stderr, flush=True)
                runner.run(l)
                print(f"  {l.status} in {l.seconds:.0f}s" + (f": {l.why}" if l.status == "FAIL" else ""),
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(f"{l.doc}:{l.lineno}") for l in lines)
    for l in lines:
        cmd, _ = split_comment(l.text)
        sec = f" {l.seconds:5.0f}s" if l.seconds else ""
        print(f"{l.status:5s} {f'{l.doc}:{l.lineno}':{width}s}{sec}  {cmd[:110]}" + (f"\n      {l.why}" if l.status in
              ("FAIL", "NEEDS", "SKIP") else ""))
    counts = {s: sum(l.status == s for l in lines) for s in ("PASS", "FAIL", "NEEDS", "SKIP", "RUN")}
    print("  ".join(f"{k} {v}" for k, v in counts.items() if v))
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
