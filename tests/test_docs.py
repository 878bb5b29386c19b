"""The command lines of README.md and docs/*.md (experiments/check_docs.py): each one either
runs on the default data or says what it needs; the slow test runs them all, tiny."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "experiments"))
import check_docs  # noqa: E402


def test_every_doc_command_runs_on_the_default_data_or_says_what_it_needs():
    lines = [l for doc in check_docs.DOCS for l in check_docs.command_lines(doc)]
    for l in lines:
        check_docs.classify(l)
    assert len(lines) > 40  # README + docs
    bad = [f"{l.doc}:{l.lineno}: {l.text}" for l in lines if l.status == "FAIL"]
    assert not bad, "lines that name data files but do not say '# needs ...':\n" + "\n".join(bad)
    # the ones a new user hits first are run, not excused
    run = {l.text.split("#")[0].strip() for l in lines if l.status == "RUN"}
    assert "python -m router_lab.train -m model=classifier,routerdc,rankrouter seed=1,2,3" in run
    assert "python -m router_lab.train +hparams_search=optuna model=routerdc" in run
    assert "python -m router_lab.clusters data=synthetic" in run


def test_a_needs_comment_excuses_a_line_and_continuations_are_joined(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("```bash\npython -m router_lab.train +experiment=routerdc_split2   # the paper: needs split2\n"
                   "python -m router_lab.train \\\n    model=routerdc\n"
                   "python -m router_lab.train data.train.path=<routerbench.pkl>\n```\n"
                   "```python\npython -m not_a_shell_line\n```\n")
    lines = check_docs.command_lines(doc)
    for l in lines:
        check_docs.classify(l)
    assert [(l.lineno, l.status) for l in lines] == [(2, "NEEDS"), (3, "RUN"), (5, "FAIL")]
    assert lines[0].why == "needs split2" and lines[1].text == "python -m router_lab.train model=routerdc"


@pytest.mark.slow
@pytest.mark.timeout(7200)  # every command line of the docs, one after another
def test_every_doc_command_line_runs_with_tiny_settings():
    res = subprocess.run([sys.executable, "experiments/check_docs.py"], cwd=REPO, capture_output=True, text=True,
                         timeout=7200)
    assert res.returncode == 0, res.stdout[-5000:]
