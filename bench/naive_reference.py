"""A deliberately naive model server, for comparison only: how the AWS sample works.

Flask, pandas to parse the CSV, one fastText ``predict`` per row with k=1, one JSON line per row
with the top label and its probability only. Run under gunicorn by ``bench_container`` with the
same worker count as our server. Never used outside the benchmark.
"""

from __future__ import annotations

import io
import json
import os

import fasttext
import flask
import pandas as pd

model = fasttext.load_model(os.path.join(os.environ["SM_MODEL_DIR"], "model.bin"))
app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    return flask.Response(status=200)


@app.route("/invocations", methods=["POST"])
def invocations():
    frame = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    lines = []
    for text in frame[0].astype(str):
        # list-form predict: the single-string form fails under numpy 2
        labels, probs = model.predict([text], k=1)
        lines.append(json.dumps({"label": labels[0], "prob": [float(probs[0][0])]}))
    return flask.Response("\n".join(lines), mimetype="application/jsonlines")
