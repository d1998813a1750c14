import json

from typer.testing import CliRunner

from longlore.cli import app


def test_make_data_train_compress_eval(tmp_path) -> None:
    runner = CliRunner()
    data = tmp_path / "qa.jsonl"
    result = runner.invoke(
        app,
        [
            "ram",
            "make-data",
            "--out",
            str(data),
            "--n",
            "3",
            "--min-tokens",
            "150",
            "--max-tokens",
            "200",
            "--tokenizer-model",
            "tiny-llama",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(rows) == 3 and all(r["answers"][0] and r["positive_spans"] for r in rows)
    assert all(s in r["context"] for r in rows for s in r["positive_spans"])  # the evidence is really planted
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "ram",
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--model",
            "tiny-llama",
            "--steps",
            "2",
            "--encoder-layers",
            "1",
            "--segment-tokens",
            "16",
            "--sample-ratio",
            "--ratio-range",
            "0.2,0.6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "final" / "ram_config.json").read_text())["ratio_range"] == [0.2, 0.6]
    context = tmp_path / "doc.txt"
    context.write_text(rows[0]["context"])
    result = runner.invoke(
        app,
        [
            "ram",
            "compress",
            "--context-file",
            str(context),
            "--question",
            rows[0]["question"],
            "--model",
            "tiny-llama",
            "--ram-dir",
            str(out / "final"),
            "--rate",
            "0.5",
            "--text-only",
        ],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output.splitlines()[0])
    assert stats["keep_ratio"] == 0.5 and len(stats["kept_segments"]) == stats["n_segments"] // 2
    assert " ... " in result.output.splitlines()[1]  # text-only mode prints the close-read segments
    metrics = tmp_path / "m.json"
    result = runner.invoke(
        app,
        [
            "ram",
            "eval",
            "--data",
            str(data),
            "--model",
            "tiny-llama",
            "--ram-dir",
            str(out / "final"),
            "--output",
            str(metrics),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(metrics.read_text())["metrics"]["n"] == 3
