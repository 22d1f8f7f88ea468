"""Make docs/report.png (the report's top) and docs/report-records.png (its records): a real local run,
screenshotted in headless Chromium.

    python -m bench.screenshot docs

The run: fastText trained on the demo's generated corpus, 30 texts explained with a label column; every third text
gets a sentence of another class's words, so the model gets some wrong and the report shows its confusion matrix
and misclassified records. Each PNG is SIZE pixels (the top of the page; the records section with one record
explaining another class than the predicted one), and carries in a tEXt chunk the sha256 of
explain_workflow/report.py that rendered it, so a test can tell whether the picture is the current report's (pixels
differ between Chromium builds and fonts; the code that rendered them does not).
"""

from __future__ import annotations

import csv
import hashlib
import random
import sys
import tempfile
import zlib
from pathlib import Path

from bench.chromium import Chromium
from explain_workflow import report

SIZE = (1200, 1400)
SHOTS = ("report.png", "report-records.png")
KEY = b"report-sha256"


def current_fingerprint() -> str:
    return hashlib.sha256(Path(report.__file__).read_bytes()).hexdigest()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def with_fingerprint(png: bytes, fingerprint: str) -> bytes:
    """The PNG with a tEXt chunk KEY=fingerprint right after its IHDR chunk (8 signature + 25 IHDR bytes)."""
    return png[:33] + _chunk(b"tEXt", KEY + b"\0" + fingerprint.encode()) + png[33:]


def fingerprint_of(path: Path) -> str | None:
    data, at = Path(path).read_bytes(), 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt" and body.startswith(KEY + b"\0"):
            return body[len(KEY) + 1 :].decode()
        at += 12 + length
    return None


def _run(out: Path) -> Path:
    """A real local run with a label column; returns its report.html."""
    from textexplain import local, synthetic, training

    model = training.train([(e.label, e.text) for e in synthetic.generate(700, seed=1)])
    tarball = out / "model.tar.gz"
    with training.saved(model) as model_file:
        training.package(model_file, tarball)
    rng = random.Random(7)
    data = out / "texts.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i, example in enumerate(synthetic.generate(30, seed=5)):
            text = example.text
            if i % 3 == 0:  # another class's words too: a hard text
                other = rng.choice([c for c in synthetic.CLASSES if c != example.label])
                text += " " + synthetic.make_text(rng, other, sentences=2)
            writer.writerow([text, example.label])
    with local.model_endpoint(tarball, None, None) as (url, order):
        config = local.LocalRun(data, out, order, {"num_samples": 300, "label_column": "label"})
        result = local.run(config, url)
    return Path(result["run_dir"]) / "results" / "report.html"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m bench.screenshot DIRECTORY (writes report.png and report-records.png there)",
              file=sys.stderr)  # fmt: skip
        return 2
    target = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        page_path = _run(Path(tmp))
        with Chromium() as browser:
            page = browser.page(*SIZE)
            page.open(page_path.as_uri())
            page.wait_for("document.documentElement.dataset.ready")
            errors = page.errors()
            if errors:
                print(f"the report logged errors: {errors}", file=sys.stderr)
                return 1
            shots = [Path(tmp) / name for name in SHOTS]
            page.screenshot(shots[0], *SIZE)
            # the records, misclassified only: the first explained for the class it was labelled
            page.js("document.getElementById('f-wrong').click()")
            page.js(
                "(s => { s.value = String(JSON.parse(document.getElementById('report-data').textContent).records"
                ".find(r => r.y >= 0 && r.y !== r.p).y); s.dispatchEvent(new Event('change')); })"
                "(document.querySelector('#records .record select.explain'))"
            )
            page.js("document.getElementById('records-h').scrollIntoView()")
            page.screenshot(shots[1], *SIZE)
        for shot in shots:
            (target / shot.name).write_bytes(with_fingerprint(shot.read_bytes(), current_fingerprint()))
            print(f"{target / shot.name}: {SIZE[0]}x{SIZE[1]}, report.py {current_fingerprint()[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
