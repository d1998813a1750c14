import json

from typer.testing import CliRunner

from longlore.cli import app


def test_make_data_train_compress_answer_eval(tmp_path) -> None:
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
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
            "--sample-keep-ratio",
            "--keep-ratio-range",
            "0.2,0.6",
            "--selector-steps",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "final" / "ram_config.json").read_text())["config"]["keep_ratio_range"] == [0.2, 0.6]
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
            "--keep-ratio",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["keep_ratio"] == 0.5 and len(stats["kept_segments"]) == stats["n_segments"] // 2
    assert stats["compression"] == round(stats["original_tokens"] / stats["compressed_length"], 3)
    base = ["--context-file", str(context), "--question", rows[0]["question"], "--model", "tiny-llama"]
    base += ["--ram-dir", str(out / "final"), "--keep-ratio", "0.5"]
    result = runner.invoke(app, ["ram", "compress", *base, "--text-only"])
    assert result.exit_code == 0, result.output
    # text-only: stdout is exactly the close-read segments (stats go to stderr)
    from longlore.core.models import load_causal_lm
    from longlore.ram.model import RAMModel

    decoder, tokenizer = load_causal_lm("tiny-llama")
    ram = RAMModel.from_pretrained(decoder, tokenizer, out / "final").eval()
    compressed = ram.compress(rows[0]["context"], rows[0]["question"], keep_ratio=0.5)
    assert result.stdout == compressed.close_read_text() + "\n"
    assert json.loads(result.stderr.strip().splitlines()[-1])["kept_segments"] == compressed.kept
    result = runner.invoke(app, ["ram", "answer", *base])
    assert result.exit_code == 0, result.output
    reply = ram.generate_from_embeddings([ram.prompt_embeddings(compressed, rows[0]["question"])])[0]
    assert result.stdout == reply + "\n" and reply
    assert json.loads(result.stderr.strip().splitlines()[-1])["n_segments"] == len(compressed.segment_texts)
    result = runner.invoke(app, ["ram", "answer", *base, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["answer"] == reply and payload["kept_segments"] == compressed.kept
    # from the kept text only: asked for, or by default for a RAM whose skim projector is untrained
    text_compressed = ram.compress(rows[0]["context"], rows[0]["question"], keep_ratio=0.5, skim=False)
    text_reply = ram.generate_from_embeddings([ram.prompt_embeddings(text_compressed, rows[0]["question"])])[0]
    result = runner.invoke(app, ["ram", "answer", *base, "--no-skim", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer"] == text_reply
    assert (
        json.loads(result.stdout)["compressed_length"] == text_compressed.compressed_length < stats["compressed_length"]
    )
    (out / "final" / "training.json").write_text(json.dumps({"trained": ["encoder"], "untrained": ["projector"]}))
    result = runner.invoke(app, ["ram", "answer", *base, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["compressed_length"] == text_compressed.compressed_length
    assert "projector is untrained" in result.stderr
    result = runner.invoke(app, ["ram", "answer", *base[:1], str(tmp_path / "missing.txt"), *base[2:]])
    assert "missing.txt: no such file" in str(result.exception)  # one line; longlore.cli.main prints it
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
