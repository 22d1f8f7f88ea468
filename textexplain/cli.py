"""``textexplain``: explain text-classifier predictions the way SageMaker Clarify does, locally.

textexplain demo                       built-in corpus -> model -> scored in-process -> explained -> report
textexplain train --data f.csv ...     a fastText model.tar.gz usable by the container and SageMaker
textexplain explain --model m.tar.gz --data f.csv [options]
textexplain report RUN_DIR             re-render a run's report.html
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from explain_workflow.contract import AGG_METHODS, GRANULARITIES, SEED_MAX, ClarifyOptions, Limits, RunStatus
from explain_workflow.dataset import InputValidationError, first_invalid_utf8_byte, resolve_text_column

EXIT_BAD_INPUT = 2


def parse_labels(raw: str) -> list[str]:
    """``--labels``: a JSON list of distinct, non-empty label names, or an error that shows the right form."""
    example = '--labels \'["Film", "Album"]\''
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"--labels {raw!r} is not JSON; write the labels as a JSON list, e.g. {example}") from None
    if isinstance(value, str):
        raise ValueError(f"--labels {raw!r} is one JSON string, not a list; write --labels '{json.dumps([value])}'")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"--labels {raw!r} must be a non-empty JSON list of non-empty strings, e.g. {example}")
    duplicates = sorted({v for v in value if value.count(v) > 1})
    if duplicates:
        raise ValueError(f"--labels names {duplicates} more than once; each label must appear exactly once")
    return value


def check_input_file(path: Path, option: str, expected: str = "the CSV file itself") -> None:
    """A readable regular file, or an error saying what ``path`` is instead."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; pass {expected}")
    if not path.exists():
        raise ValueError(f"{option} {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{option} {path} is not a regular file")


def check_csv_file(path: Path, option: str, columns: Mapping[str, str | int], by_index: bool = True) -> None:
    """A non-empty UTF-8 CSV file whose header row has ``columns`` (each under the option that names it), or an
    error naming the option, the file and what is wrong with it."""
    check_input_file(path, option)
    if path.stat().st_size == 0:
        raise ValueError(f"{option} {path} is empty (0 bytes); expected a header row and data rows")
    with path.open("rb") as fh:
        bad = first_invalid_utf8_byte(fh)
    if bad is not None:
        raise ValueError(
            f"{option} {path} is not valid UTF-8: byte {bad} is not part of a UTF-8 character; save the file as UTF-8"
        )
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            header = next(csv.reader(fh, strict=True), None)
        except csv.Error as exc:
            raise ValueError(f"{option} {path}: the header row is not valid CSV ({exc})") from None
    if not header:
        raise ValueError(f"{option} {path} has no header row: its first line must name the columns")
    for column_option, column in columns.items():
        if by_index:
            try:
                resolve_text_column(header, column)
            except InputValidationError as exc:
                raise ValueError(f"{option} {path}: {exc.reason}; name the column with {column_option}") from None
        elif column not in header:
            raise ValueError(
                f"{option} {path}: no column named {column!r}; the header has {header}; name it with {column_option}"
            )


def check_model_file(path: Path) -> None:
    check_input_file(path, "--model", "the model.tar.gz file")
    if not tarfile.is_tarfile(path):
        raise ValueError(f"--model {path} is not a tar archive; pass the model.tar.gz that `textexplain train` writes")


def check_endpoint(url: str) -> None:
    """The endpoint answers at all (any HTTP status), or an error that says why it cannot be reached."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--endpoint-url {url!r} is not an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=10):  # noqa: S310 - the scheme is checked
            pass
    except urllib.error.HTTPError:
        return  # it answered; whether /ping exists there is not ours to require
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError(f"--endpoint-url {url} cannot be reached: {getattr(exc, 'reason', exc)}") from None


def read_json_file(path: Path, option: str) -> dict:
    check_input_file(path, option, "the JSON file itself")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{option} {path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} {path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} {path} must hold a JSON object, such as a Clarify analysis config")
    return value


def _at_least(low: int, high: int | None = None):
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _share(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value}")
    return value


def _progress(stream, total: int):
    from tqdm import tqdm

    return tqdm(stream, total=total, unit="record", desc="explaining", file=sys.stderr)


def _explain_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain the texts of a CSV file with a model, Clarify-style")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a model.tar.gz (scored in-process by the container's model code)")
    source.add_argument("--endpoint-url", help="a running server that speaks the container's contract")
    source.add_argument("--stage", help="run in the deployed stage instead (needs AWS credentials)")
    p.add_argument("--data", type=Path, help="local mode: the CSV file to explain, with a header row")
    p.add_argument("--input", help="with --stage: s3://bucket/key, or a local CSV (uploaded to uploads/)")
    p.add_argument("--no-follow", action="store_true", help="with --stage: start the run and return")
    p.add_argument("--text-column", default=None, help="column name or 0-based index (default: text)")
    p.add_argument(
        "--label-column",
        default=None,
        help="a column of true labels (by name): the report adds accuracy, a confusion matrix and the misclassified "
        "records; the labels are kept beside the dataset the explainer reads, never in it",
    )
    p.add_argument(
        "--granularity", choices=GRANULARITIES, default=None, help="units that are explained (default: token)"
    )
    p.add_argument("--language", default=None, help="Clarify language name or ISO code (default: english)")
    p.add_argument("--num-samples", type=_at_least(1), default=None, help="coalitions per record (default: 1000)")
    p.add_argument("--baseline", default=None, help="masking token (default: <UNK>)")
    p.add_argument(
        "--agg-method", choices=AGG_METHODS, default=None, help="how global values aggregate (default: mean_abs)"
    )
    p.add_argument("--analysis-config", type=Path, help="take the options above from a Clarify analysis config")
    p.add_argument(
        "--labels",
        help='JSON list such as \'["Film", "Album"]\': the answer order of the model (default: the model\'s, sorted)',
    )
    p.add_argument("--max-rows", type=_at_least(1), default=Limits().max_rows, help="refuse files with more data rows")
    p.add_argument(
        "--out", type=Path, default=Path("textexplain-output"), help="output directory (default: textexplain-output)"
    )
    p.add_argument(
        "--seed", type=_at_least(0, SEED_MAX), default=0, help="random seed of the coalition sampling (default: 0)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textexplain", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the whole pipeline on the built-in corpus, no AWS account")
    demo.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory (default: demo-output)")
    demo.add_argument("--records", type=_at_least(1), default=24, help="texts to explain (default: 24)")
    demo.add_argument("--num-samples", type=_at_least(1), default=500, help="coalitions per record (default: 500)")
    demo.add_argument(
        "--label-column",
        default="true_label",
        help="the generated file's label column the report evaluates against (default: true_label; '' for none)",
    )
    train = sub.add_parser("train", help="train a fastText model.tar.gz from a labelled CSV")
    train.add_argument("--data", type=Path, required=True, help="CSV with a header row, a text and a label column")
    train.add_argument("--text-column", default="text", help="name of the text column (default: text)")
    train.add_argument("--label-column", default="label", help="name of the label column (default: label)")
    train.add_argument("--out", type=Path, default=Path("model.tar.gz"), help="the model package to write")
    train.add_argument("--held-out", type=_share, default=0.1, help="share kept aside to report accuracy")
    train.add_argument("--epochs", type=_at_least(1), default=25, help="training epochs (default: 25)")
    train.add_argument("--seed", type=int, default=0, help="random seed of the split and training (default: 0)")
    _explain_parser(sub)
    status = sub.add_parser("status", help="a run's manifest in a deployed stage")
    status.add_argument("run_id", help="the run's id, as printed when it started")
    status.add_argument("--stage", required=True, help="the deployed stage (config/stages/<stage>.json)")
    estimate = sub.add_parser("estimate", help="model calls, job time and cost of explaining a CSV in a stage")
    estimate.add_argument("--input", type=Path, required=True, help="the local CSV file to estimate for")
    estimate.add_argument("--stage", default="dev", help="stage whose settings and prices apply (default: dev)")
    estimate.add_argument("--text-column", default=None, help="column name or 0-based index (default: text)")
    estimate.add_argument(
        "--num-samples", type=_at_least(1), default=None, help="coalitions per record (default: the stage's)"
    )
    report = sub.add_parser("report", help="re-render report.html of a finished run")
    report.add_argument("run_dir", type=Path, help="<out>/results/runs/<run_id>/")
    return parser


def overrides_from(args) -> dict:
    """Per-run options, from flags or from a Clarify analysis config (flags win)."""
    values: dict = {}
    if args.analysis_config:
        config = read_json_file(args.analysis_config, "--analysis-config")
        shap_cfg = config.get("methods", {}).get("shap", {})
        text_cfg = shap_cfg.get("text_config", {})
        baseline = shap_cfg.get("baseline")
        values |= {
            "granularity": text_cfg.get("granularity"),
            "language": text_cfg.get("language"),
            "num_samples": shap_cfg.get("num_samples"),
            "agg_method": shap_cfg.get("agg_method"),
            "baseline": baseline[0][0] if isinstance(baseline, list) and baseline and baseline[0] else None,
        }
    flags = {
        "text_column": args.text_column,
        "label_column": getattr(args, "label_column", None),
        "granularity": args.granularity,
        "language": args.language,
        "num_samples": args.num_samples,
        "baseline": args.baseline,
        "agg_method": args.agg_method,
    }
    values |= {k: v for k, v in flags.items() if v is not None}
    return {k: v for k, v in values.items() if v is not None}


def _aws_clients(stage: str):
    """Clients in the stage's own region (config/stages/<stage>.json), whatever the user's default region is. With
    AWS_ENDPOINT_URL (a stand-in for the AWS API) the environment's region is the one that endpoint serves."""
    import boto3

    from infra.config import load_stage

    region = None if os.environ.get("AWS_ENDPOINT_URL") else load_stage(stage).region
    session = boto3.Session(region_name=region)
    return {name: session.client(name) for name in ("s3", "stepfunctions", "cloudformation", "sts")}


def cmd_explain_in_stage(args) -> int:
    from textexplain import aws_cli

    if not args.input:
        raise aws_cli.AwsCliError("--stage needs --input (s3://bucket/key or a local CSV)")
    c = _aws_clients(args.stage)
    targets = aws_cli.StageTargets.from_stack(c["cloudformation"], args.stage)
    account = c["sts"].get_caller_identity()["Account"]
    overrides = overrides_from(args)
    result = aws_cli.start(targets, args.input, overrides, c["s3"], c["stepfunctions"], account)
    print(f"run {result['run_id']}: {result['status'].lower()}")
    if args.no_follow:
        return 0
    final = aws_cli.follow(
        c["stepfunctions"], targets.state_machine_arn, result["run_id"], attempt=result.get("attempt", 1)
    )
    manifest = aws_cli.status(c["s3"], targets.results_bucket, result["run_id"])
    print(f"execution {final.lower()}; manifest: {json.dumps(manifest.get('results') or manifest.get('reason'))}")
    return 0 if manifest.get("status") == "SUCCEEDED" else 1


def cmd_status(args) -> int:
    from textexplain import aws_cli

    c = _aws_clients(args.stage)
    targets = aws_cli.StageTargets.from_stack(c["cloudformation"], args.stage)
    print(json.dumps(aws_cli.status(c["s3"], targets.results_bucket, args.run_id), indent=2))
    return 0


def cmd_estimate(args) -> int:
    from infra.config import load_stage
    from textexplain import aws_cli

    check_csv_file(args.input, "--input", {"--text-column": args.text_column or ClarifyOptions().text_column})
    config = load_stage(args.stage)
    # processing + the temporary endpoint, counted separately even when their types match (a dict would merge them)
    instances = {
        "processing": (config.processing.instance_type, config.processing.instance_count),
        "endpoint": (config.model.endpoint_instance_type, config.model.endpoint_instance_count),
    }
    unknown = [t for t, _ in instances.values() if t not in config.prices_per_hour]
    price = None if unknown else sum(config.prices_per_hour[t] * n for t, n in instances.values())
    result = aws_cli.estimate(
        args.input,
        args.text_column or "text",
        args.num_samples or config.clarify.num_samples,
        price,
    )
    print(f"rows: {result.rows:,}")
    print(f"model invocations (rows x samples): {result.model_calls:,}")
    print(f"stage engine: {config.explainer.engine}")
    print("clarify engine (processing instances + a temporary endpoint, the model scored over HTTP):")
    print(
        f"  scoring at {aws_cli.DEFAULT_ROWS_PER_SECOND:,} rows/s (measured: our container over HTTP, 2 workers on "
        f"2 cores, docs/container.md): {result.scoring_seconds / 60:.1f} min"
    )
    print(f"  job incl. ~5 min endpoint start: {result.job_seconds / 60:.1f} min")
    if result.cost is None:
        print(f"  cost: no price in the stage config for {unknown}")
    else:
        shown = ", ".join(f"{role} {n} x {t}" for role, (t, n) in instances.items())
        print(f"  cost = {price:.3f} USD/hour ({shown}) x job hours: {result.cost:.2f} USD")
    _print_builtin(config, result.model_calls)
    return 0


def _print_builtin(config, model_calls: int) -> None:
    from textexplain import aws_cli

    kind, count = config.processing.instance_type, config.processing.instance_count
    rate = aws_cli.BUILTIN_CALLS_PER_SECOND_PER_VCPU
    print("builtin engine (processing instances only, the model scored in-process, no endpoint):")
    seconds = aws_cli.builtin_seconds(model_calls, kind, count)
    if seconds is None:
        print(f"  time: the vCPUs of {kind} are not known to textexplain; cost not computed")
        return
    vcpus = aws_cli.INSTANCE_VCPUS[kind]
    print(
        f"  scoring at {rate:,} calls/s per vCPU (measured: explainer in-process, one core of a quiet 2-core machine, "
        f"docs/local.md) x {vcpus} vCPUs x {count} instance(s): {seconds / 60:.1f} min"
    )
    if kind not in config.prices_per_hour:
        print(f"  cost: no price in the stage config for {[kind]}")
        return
    price = config.prices_per_hour[kind] * count
    print(f"  cost = {price:.3f} USD/hour (processing {count} x {kind}) x job hours: {price * seconds / 3600:.2f} USD")


def cmd_explain(args) -> int:
    from textexplain import local

    if args.stage:
        return cmd_explain_in_stage(args)
    if not args.data:
        raise local.LocalRunError("--data is required (a CSV with a header row)")

    labels = parse_labels(args.labels) if args.labels else None
    if args.analysis_config and not labels:
        labels = read_json_file(args.analysis_config, "--analysis-config").get("predictor", {}).get("label_headers")
    overrides = overrides_from(args)
    check_csv_file(args.data, "--data", {"--text-column": overrides.get("text_column", ClarifyOptions().text_column)})
    if args.label_column is not None:
        check_csv_file(args.data, "--data", {"--label-column": args.label_column}, by_index=False)
    if args.model:
        check_model_file(args.model)
    else:
        check_endpoint(args.endpoint_url)
    with local.model_endpoint(args.model, args.endpoint_url, labels) as (url, order):
        limits = Limits(max_rows=args.max_rows)
        config = local.LocalRun(args.data, args.out, order, overrides, limits, args.seed)
        try:
            result = local.run(config, url, progress=_progress)
        except InputValidationError as exc:
            if exc.where:  # a row of the file (its row, line or byte): say which file
                raise InputValidationError(f"--data {args.data}: {exc}") from None
            raise
    _print_result(result)
    return 0


def _print_result(result: dict) -> None:
    run_dir = Path(result["run_dir"])
    if result["status"] == RunStatus.ALREADY_DONE:
        print(f"already explained: {run_dir} (same input, options and model; nothing recomputed)")
    else:
        check = result.get("faithfulness") or {}
        print(f"explained {result['records']} records with {result['model_requests']} model requests")
        if check.get("records"):
            print(
                f"faithfulness: deleting top-{check['k']} units drops the predicted class by "
                f"{check['mean_top_k_drop']:.3f}, random units by {check['mean_random_k_drop']:.3f}"
            )
    evaluation = run_dir / "results" / "evaluation.json"
    if evaluation.is_file():  # the run had a label column
        figures = json.loads(evaluation.read_text(encoding="utf-8"))
        if figures["evaluated"]:
            wrong = figures["evaluated"] - figures["correct"]
            print(
                f"accuracy against {figures['label_column']}: {figures['correct']} of {figures['evaluated']} "
                f"({figures['accuracy']:.1%})" + (f"; the report shows the {wrong} misclassified" if wrong else "")
            )
    print(f"report:  {run_dir / 'results' / 'report.html'}")
    print(f"records: {run_dir / 'results' / 'records.jsonl'}")


def cmd_train(args) -> int:
    from textexplain import training

    columns = {"--text-column": args.text_column, "--label-column": args.label_column}
    check_csv_file(args.data, "--data", columns, by_index=False)
    pairs = training.read_labelled_csv(args.data, args.text_column, args.label_column)
    hp = training.Hyperparameters(epoch=args.epochs, seed=args.seed)
    accuracy, model = training.train_with_held_out(pairs, args.held_out, hp)
    with training.saved(model) as model_file:
        training.package(model_file, args.out)
    print(f"trained on {len(pairs)} rows, labels {training.model_labels(model)}")
    print(f"held-out accuracy: {accuracy:.3f}" if accuracy is not None else "held-out accuracy: (no rows held out)")
    print(f"model: {args.out}")
    return 0


def cmd_demo(args) -> int:
    from textexplain import local, synthetic, training

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    corpus = synthetic.generate(1400, seed=1)
    model = training.train([(e.label, e.text) for e in corpus])
    tarball = out / "model.tar.gz"
    with training.saved(model) as model_file:
        training.package(model_file, tarball)
    print(f"trained a fastText model on {len(corpus)} generated texts -> {tarball}")
    data = out / "texts.csv"
    texts = synthetic.generate(args.records, seed=2, paragraphs=(1, 2))
    with data.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "true_label"])
        for i, ex in enumerate(texts, start=1):
            writer.writerow([f"doc-{i}", ex.text, ex.label])
    with local.model_endpoint(tarball, None, None) as (url, order):
        overrides = {"num_samples": args.num_samples}
        if args.label_column:
            overrides["label_column"] = args.label_column
        config = local.LocalRun(data, out, order, overrides)
        result = local.run(config, url, progress=_progress)
    _print_result(result)
    return 0


def cmd_report(args) -> int:
    from explain_workflow import report

    run_dir: Path = args.run_dir
    if not (run_dir / "manifest.json").is_file():
        raise ValueError(
            f"{run_dir} is not a run directory (it has no manifest.json); pass <out>/results/runs/<run_id>/"
        )
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("status") != "SUCCEEDED":
        raise InputValidationError(f"{run_dir} did not succeed ({manifest.get('status')}): {manifest.get('reason')}")
    html = report.render_dir(run_dir / "results")  # exactly what postprocess rendered, from what it wrote
    target = run_dir / "results" / "report.html"
    target.write_text(html, encoding="utf-8")
    print(f"report: {target}")
    return 0


def _stop_in_order_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C: the local server is stopped, temporary files are removed."""

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from textexplain.aws_cli import AwsCliError
    from textexplain.local import LocalRunError
    from textexplain.serving import ServeError, temporary_files

    args = build_parser().parse_args(argv)
    _stop_in_order_on_signals()
    commands = {
        "demo": cmd_demo,
        "train": cmd_train,
        "explain": cmd_explain,
        "report": cmd_report,
        "status": cmd_status,
        "estimate": cmd_estimate,
    }
    try:
        # every temporary file of the run (extracted model, training files, .partial-* outputs) is removed however
        # this process ends, SIGKILL included: a watchdog process outlives it to do so
        with temporary_files():
            return commands[args.command](args)
    except (InputValidationError, LocalRunError, ServeError, AwsCliError, ValueError, OSError) as exc:
        print(f"textexplain {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NoCredentialsError:
        print(
            f"textexplain {args.command}: error: no AWS credentials found; configure them (aws configure, "
            "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except (BotoCoreError, ClientError) as exc:  # a profile, region or permission problem: said by AWS's own words
        print(f"textexplain {args.command}: error: AWS: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C: cleaned up on the way out, like SIGTERM; a stop, not a crash to trace
        print(f"textexplain {args.command}: interrupted; the same command again resumes the run", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
