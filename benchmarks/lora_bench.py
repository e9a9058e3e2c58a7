"""LoRA benchmark: hubtool's adapter training against full fine-tuning and peft + Trainer.

    python benchmarks/lora_bench.py [--runs 3] [--steps 200] [--batch-size 16]

Real checkpoint and data (as finetune_bench.py): all-MiniLM-L6-v2 with a new 2-class head on
the English election tweets, max_length 128. Loops, each in its own process, alternating on
every round (medians reported):
  hubtool-full   `hubtool finetune` with its defaults (every weight trained, lr 5e-5)
  hubtool-lora   `hubtool finetune --peft lora` (rank 8, alpha 16, dropout 0.05, peft's
                 default layers for BERT: query and value; the new head trained whole), lr 5e-4
  hubtool-qlora  `hubtool finetune --peft lora --quantize 4bit`: the same adapter on the base
                 loaded in 4-bit NF4 by bitsandbytes (only where it is installed), lr 5e-4
  peft-trainer   the same LoraConfig through peft's get_peft_model and transformers.Trainer
                 at its best here (group_by_length, bf16 where the machine computes it fast,
                 as hubtool's probe decides), lr 5e-4
Columns: samples/s, peak resident memory of the process (MiB), trainable parameters, the saved
adapter's size (KiB; the full model's for hubtool-full) and validation accuracy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
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

from finetune_bench import COMMON, assets, bench_env, trainer_precision  # noqa: E402

from hubtool.demo import assets as demoassets  # noqa: E402

LOOPS = ("hubtool-full", "hubtool-lora", "hubtool-qlora", "peft-trainer")
LORA_LR = "5e-4"

PEFT_TRAINER = COMMON + textwrap.dedent("""
    import os
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments
    lr = float(sys.argv[7])
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="SEQ_CLS")
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    args = TrainingArguments(output_dir="out", per_device_train_batch_size=batch,
                             per_device_eval_batch_size=2 * batch, max_steps=steps,
                             learning_rate=lr, lr_scheduler_type="linear", report_to=[],
                             save_strategy="no", logging_strategy="no", seed=0,
                             train_sampling_strategy="group_by_length",
                             bf16=precision == "bf16", fp16=precision == "fp16",
                             use_cpu=not torch.cuda.is_available())
    trainer = Trainer(model=model, args=args, train_dataset=ds["train"], data_collator=collate)
    seconds = trainer.train().metrics["train_runtime"]
    pred = trainer.predict(ds["validation"])
    acc = float((pred.predictions.argmax(-1) == pred.label_ids).mean())
    model.save_pretrained("adapter")
    size = os.path.getsize("adapter/adapter_model.safetensors")
    print(json.dumps({"seconds": seconds, "samples": steps * batch, "accuracy": acc,
                      "trainable": trainable, "total": total, "bytes": size}))
""")


def run_measured(argv: list[str], work: Path) -> tuple[str, int]:
    """(stdout, peak resident memory in KiB) of one Python process."""
    with open(work / "stdout.txt", "w") as out, open(work / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, *argv], env=bench_env(work), cwd=work, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed:\n{(work / 'stderr.txt').read_text()[-3000:]}")
    return (work / "stdout.txt").read_text(), int(usage.ru_maxrss)


def hubtool_run(name: str, model: Path, data: Path, args, work: Path) -> dict:
    out = work / f"run-{time.time_ns()}"
    flags = ["--model", str(model), "--dataset", str(data), "--max-steps", str(args.steps)]
    flags += ["--batch-size", str(args.batch_size), "--max-length", "128"]
    flags += ["--output-dir", str(out), "--no-progress", "--seed", "0"]
    if name in ("hubtool-lora", "hubtool-qlora"):
        flags += ["--peft", "lora", "--lr", LORA_LR]
    if name == "hubtool-qlora":
        flags += ["--quantize", "4bit"]
    _, peak = run_measured(["-m", "hubtool", "finetune", *flags], work)
    info = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    adapter = info.get("adapter") or {}
    size = sum(p.stat().st_size for p in (out / "model").glob("*.safetensors"))
    return {
        "sps": info["throughput"]["samples_per_second"],
        "peak_mib": peak / 1024,
        "trainable": adapter.get("trainable_parameters"),
        "bytes": size,
        "accuracy": metrics["accuracy"],
        "dtype": info["precision"]["used"],
    }


def peft_trainer_run(model: Path, data: Path, args, work: Path, precision: str) -> dict:
    argv = [str(model), str(data), str(args.steps), str(args.batch_size), "best", precision]
    stdout, peak = run_measured(["-c", PEFT_TRAINER, *argv, LORA_LR], work)
    done = json.loads(stdout.strip().splitlines()[-1])
    return {
        "sps": done["samples"] / done["seconds"],
        "peak_mib": peak / 1024,
        "trainable": done["trainable"],
        "bytes": done["bytes"],
        "accuracy": done["accuracy"],
        "dtype": precision,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    model, tweets = assets()
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        work = Path(tmp)
        data = demoassets.write_tweets(tweets, work / "tweets")[0].parent
        precision = trainer_precision(work)
        loops = [
            n for n in LOOPS if n != "hubtool-qlora" or importlib.util.find_spec("bitsandbytes")
        ]
        results: dict[str, list[dict]] = {name: [] for name in loops}
        for r in range(args.runs):
            for name in loops:
                if name == "peft-trainer":
                    row = peft_trainer_run(model, data, args, work, precision)
                else:
                    row = hubtool_run(name, model, data, args, work)
                results[name].append(row)
                print(f"round {r + 1} {name}: {row}", file=sys.stderr)
    report(results, args)
    return 0


def report(results: dict[str, list[dict]], args) -> None:
    med = statistics.median
    print(
        f"all-MiniLM-L6-v2 + election tweets, {args.steps} steps, batch {args.batch_size}, "
        f"max_length 128; median of {args.runs} interleaved runs"
    )
    print(
        f"{'loop':<14}{'dtype':>6}{'samples/s':>10}{'peak MiB':>9}{'trainable':>11}"
        f"{'saved KiB':>11}{'accuracy':>9}"
    )
    rows = {}
    for name, runs in results.items():
        rows[name] = {k: med(r[k] for r in runs) for k in ("sps", "peak_mib", "accuracy")}
        trainable, size = runs[0]["trainable"], runs[0]["bytes"]
        dtype = {"no": "fp32"}.get(runs[0]["dtype"], runs[0]["dtype"])
        print(
            f"{name:<14}{dtype:>6}{rows[name]['sps']:>10.1f}{rows[name]['peak_mib']:>9.0f}"
            f"{(f'{trainable:,}' if trainable else 'all'):>11}{size / 1024:>11.0f}"
            f"{rows[name]['accuracy']:>9.3f}"
        )
    lora, full, peft = rows["hubtool-lora"], rows["hubtool-full"], rows["peft-trainer"]
    if "hubtool-qlora" in rows:
        q = rows["hubtool-qlora"]
        print(
            f"hubtool-qlora / hubtool-lora: {q['sps'] / lora['sps']:.2f}x samples/s, "
            f"{q['peak_mib'] / lora['peak_mib']:.2f}x peak memory"
        )
    print(
        f"hubtool-lora / peft-trainer: {lora['sps'] / peft['sps']:.2f}x samples/s; "
        f"hubtool-lora / hubtool-full: {lora['sps'] / full['sps']:.2f}x samples/s, "
        f"{lora['peak_mib'] / full['peak_mib']:.2f}x peak memory"
    )


if __name__ == "__main__":
    raise SystemExit(main())
