"""The README's recipes run as printed: the own-loop example, and reading a cache with
numpy, zarr and pyarrow alone (no softlabels, no torch, no warning under ``-X dev``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from softlabels_ecosystem_helpers import EXAMPLE, ROOT, run_python

import softlabels
from softlabels.stores.schema import LOGITS

README = ROOT / "README.md"
RECIPE_HEADING = "### Reading a cache without softlabels"
RECIPE_PATH = 'path = "runs/mnist1d.slc"'


def _python_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section under ``heading`` (to its next heading)."""
    text = README.read_text()
    start = text.index(heading) + len(heading)
    end = min(i for i in (text.find("\n## ", start), text.find("\n### ", start)) if i >= 0)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def test_the_readme_shows_the_example_whole() -> None:
    blocks = _python_blocks("## Your own training loop")
    assert EXAMPLE.read_text() in blocks


# Appended to the recipe: what it read, for the test to compare (still no softlabels).
_REPORT = """
import sys
assert not {"softlabels", "torch"} & set(sys.modules), "the recipe imported softlabels or torch"
np.savez(OUT + ".npz", labels=labels, seeds=seeds, logits=logits, probs=probs, rows=first_rows)
with open(OUT + ".json", "w") as f:
    json.dump({"meta": meta, "teacher": name, "samples": samples.to_pylist(),
               "classes": classes.to_pylist(), "features": features.shape}, f)
"""


def test_a_cache_reads_with_numpy_zarr_and_pyarrow_alone(views_cache: str, tmp_path: Path) -> None:
    (recipe,) = _python_blocks(RECIPE_HEADING)
    assert recipe.count(RECIPE_PATH) == 1
    out = tmp_path / "read"
    script = tmp_path / "recipe.py"
    head = f"import json\nOUT = {str(out)!r}\n"
    script.write_text(head + recipe.replace(RECIPE_PATH, f"path = {views_cache!r}") + _REPORT)
    # -X dev: resource and asyncio debug warnings on; -W error: any warning fails the read.
    done = run_python("-X", "dev", "-W", "error", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    got = np.load(f"{out}.npz")
    info = json.loads(Path(f"{out}.json").read_text())

    cache = softlabels.open_cache(views_cache)
    assert info["meta"] == json.loads(json.dumps(cache.meta)) and info["teacher"] == "t"
    assert got["labels"].dtype == np.int32 and np.array_equal(got["labels"], cache.labels)
    seeds = cache.read_view_seeds()
    assert got["seeds"].dtype == np.uint64 and np.array_equal(got["seeds"], seeds)
    logits = cache.teacher("t").reader(LOGITS).read_all()  # verified reads
    assert got["logits"].dtype == logits.dtype and np.array_equal(got["logits"], logits)
    assert np.array_equal(got["rows"], logits[:256, 0])
    z = logits.astype(np.float64) / 4.0
    p = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(got["probs"], p / p.sum(-1, keepdims=True), rtol=1e-5)
    assert info["samples"] == cache.samples().to_pylist()
    assert info["classes"] == cache.classes().to_pylist()
    assert tuple(info["features"]) == cache.teacher("t").features.shape
    # The seeds regenerate the views softlabels replays (what a loop of one's own needs).
    data = softlabels.CachedDataset(cache.dataset.spec, views_cache)
    data.set_epoch(1)
    ds = data.dataset
    x = ds.augment(ds.train.load(np.arange(4)), got["seeds"][:4, 1], strength="standard")
    assert np.array_equal(x.numpy(), data.batch(np.arange(4))[0].numpy())
