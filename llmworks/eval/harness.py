"""`llmworks eval run --harness lm-eval`: lm-evaluation-harness itself on the same model, for the reference
number from the same CLI. Its scores land in the run directory as tasks named `lm-eval/<task>` (results.json,
samples/, report.html), next to llmworks' own, and `eval compare` reads them like any other task.

- A local model runs in this process on lm-eval's `hf` backend over the model's HF weights (a GGUF is
  dequantized once into the llmworks cache, as the transformers engine does), fp32 on the CPU.
- A server (`base_url`) is reached through lm-eval's `local-completions` (/v1/completions; scoring by echo +
  logprobs over token ids), with the model's HF tokenizer.

Nothing touches the hub: `NAME=FILE` runs lm-eval's task NAME over a local JSON/JSONL file (its evaluation
split), `harness_include` adds a folder of task YAMLs, and any other task must already be in the HF datasets
cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from llmworks.atomic import atomic_write
from llmworks.errors import UserError
from llmworks.eval.config import EvalConfig
from llmworks.eval.rundir import save_results, shown_metrics, slug

PREFIX = "lm-eval/"
"""How the harness's tasks are named in a run."""


def run_lm_eval(cfg: EvalConfig, console: Console) -> Path:
    """Run lm-eval on the tasks; write its results into the run directory; return the directory."""
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError(
            "harness=lm-eval needs lm-evaluation-harness.", "pip install 'llmworks[harness]'"
        ) from None
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"  # lm-eval reads local files and caches only
    manager = TaskManager(include_path=cfg.harness_include)
    specs = [_task_spec(manager, spec) for spec in cfg.tasks]
    name, model, model_args, where = _model(cfg)
    out = Path(cfg.output_dir or Path("out/eval") / slug(name))
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml", f"llmworks eval run --config {out / 'config.yaml'}")
    label = f"lm-eval {lm_eval.__version__} --model {model}"
    console.print(f"{label} ({', '.join(f'{k}={v}' for k, v in model_args.items() if k != 'base_url')})")
    started = time.time()
    try:
        res = lm_eval.simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=specs,
            num_fewshot=cfg.shots or None,
            limit=cfg.limit,
            batch_size=8 if model == "hf" else 1,
            log_samples=True,
            apply_chat_template=bool(cfg.chat),
            task_manager=manager,
            bootstrap_iters=1000,
        )
    except ModuleNotFoundError as e:  # local-completions needs tenacity (lm-eval's [api] extra)
        raise UserError(
            f"lm-eval cannot run --model {model}: {e.msg}.", "pip install 'llmworks[harness]'"
        ) from None
    except (KeyError, ValueError, FileNotFoundError, ConnectionError) as e:
        raise UserError(
            f"lm-eval could not run {', '.join(cfg.tasks)}: {e}.",
            "Give each task a local file (NAME=FILE), or a task YAML folder with harness_include.",
        ) from None
    assert res is not None
    results: dict[str, Any] = {
        "run": {
            "model": name,
            **where,
            "harness": label,
            "chat": cfg.chat,
            "shots": cfg.shots,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
        },
        "tasks": {},
    }
    for task in res["results"]:
        entry, lines = _convert(task, res, label, cfg)
        results["tasks"][PREFIX + task] = entry
        (out / "samples").mkdir(exist_ok=True)
        atomic_write(
            out / "samples" / f"{slug(PREFIX + task)}.jsonl", "".join(_json(line) + "\n" for line in lines)
        )
        console.print(f"{PREFIX + task}: {shown_metrics(entry)}", highlight=False)
    save_results(out, results, console)
    from llmworks.eval.report import write_report

    write_report(out)
    console.print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")
    return out


def _model(cfg: EvalConfig) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """(model name as reports call it, lm-eval model type, its arguments, where the model is)."""
    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve

    if cfg.base_url is None:
        source = resolve(cfg.model)
        weights = hf_dir_for(source)
        return (
            source.name,
            "hf",
            {"pretrained": str(weights), "dtype": "float32", "device": "cpu"},
            {"path": str(source.path)},
        )
    from llmworks.client import make_client

    with make_client(cfg.model, cfg.base_url, cfg.api_key, cfg.retries) as client:
        name = client.name
    tokenizer = cfg.harness_tokenizer
    if tokenizer is None:
        try:
            tokenizer = str(hf_dir_for(resolve(name)))
        except UserError:
            raise UserError(
                f"lm-eval's local-completions needs the tokenizer of '{name}', which llmworks does not find locally.",
                "Pass harness_tokenizer=DIR (an HF folder with tokenizer.json).",
            ) from None
    if cfg.api_key:
        os.environ["OPENAI_API_KEY"] = cfg.api_key
    args = {
        "base_url": cfg.base_url.rstrip("/") + "/completions",
        "model": name,
        "tokenizer": tokenizer,
        "tokenizer_backend": "huggingface",
        "num_concurrent": cfg.concurrency,
        "max_retries": max(1, cfg.retries),
    }
    return name, "local-completions", args, {"base_url": cfg.base_url}


def _task_spec(manager: Any, spec: str) -> str | dict[str, Any]:
    """A task name, or for NAME=FILE lm-eval's own config of NAME with its data read from FILE."""
    name, _, path = spec.partition("=")
    name = name.strip()
    entry = manager.task_index.get(name)
    if entry is None:
        raise UserError(
            f"lm-eval has no task '{name}'.",
            "Use lm-eval's task names (lm-eval ls tasks), or harness_include=DIR.",
        )
    if not path:
        return name
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"{name}: {file} is not a file.", "Give NAME=FILE with a .json/.jsonl file of the task's records."
        )
    cfg = dict(entry.cfg or {})
    if "task" not in cfg or "class" in cfg:
        raise UserError(
            f"'{name}' is a group or a Python task: NAME=FILE works for one YAML task.", "Name one task."
        )
    split = cfg.get("test_split") or cfg.get("validation_split") or "test"
    return {
        **cfg,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(file.resolve())}},
        "test_split": split,
        "validation_split": None,
        "training_split": None,
        "fewshot_split": None,
    }


def _convert(
    task: str, res: dict[str, Any], label: str, cfg: EvalConfig
) -> tuple[dict[str, Any], list[dict]]:
    """lm-eval's results and logged samples of one task in llmworks' shapes (results.json entry, sample lines)."""
    metrics, errors = {}, {}
    for key, value in res["results"][task].items():
        metric, sep, filt = key.partition(",")
        if not sep or metric.endswith("_stderr"):
            continue
        shown = metric if filt == "none" else f"{metric}:{filt}"
        metrics[shown] = float(value)
        err = res["results"][task].get(f"{metric}_stderr,{filt}")
        errors[shown] = float(err) if isinstance(err, int | float) else None
    by_doc: dict[Any, dict[str, Any]] = {}
    for s in res["samples"].get(task, []):
        doc = s.get("doc") or {}
        line = by_doc.setdefault(
            s["doc_id"],
            {
                "id": str(doc.get("id", s["doc_id"])) if isinstance(doc, dict) else str(s["doc_id"]),
                "requests": [
                    _request(a, r) for a, r in zip(s["arguments"], s["filtered_resps"], strict=False)
                ],
                "target": s.get("target"),
                "extracted": None,
                "metrics": {},
            },
        )
        filt = s.get("filter", "none")
        for m in s.get("metrics", []):
            if isinstance(s.get(m), int | float):
                line["metrics"][m if filt == "none" else f"{m}:{filt}"] = float(s[m])
    lines = list(by_doc.values())
    config = res["configs"].get(task, {})
    output_type = config.get("output_type", "")
    first = lines[0]["requests"] if lines else []
    entry = {
        "kind": "multiple_choice" if output_type == "multiple_choice" else "harness",
        "method": "generate" if output_type == "generate_until" else "loglikelihood",
        "formulation": f"lm-eval {task}",
        "reference": f"lm-eval {task} (run by lm-eval itself)",
        "chat": bool(cfg.chat),
        "shots": res.get("n-shot", {}).get(task, cfg.shots),
        "harness": label,
        "n": len(lines),
        "metrics": metrics,
        "stderr": errors,
        "prompt": _first(first),
        "settings": {"doc_to_text": str(config.get("doc_to_text", "")), "metrics": list(metrics)},
    }
    return entry, lines


def _request(args: Any, resp: Any) -> dict[str, Any]:
    args = list(args) if isinstance(args, list | tuple) else [args]
    if len(args) >= 2 and isinstance(args[1], str):
        out = resp[0] if isinstance(resp, list | tuple) and resp else resp
        return {"kind": "loglikelihood", "prompt": args[0], "continuation": args[1], "output": out}
    return {"kind": "complete", "prompt": args[0], "output": resp}


def _first(requests: list[dict[str, Any]]) -> dict[str, Any]:
    if not requests:
        return {}
    if requests[0]["kind"] == "loglikelihood":
        contexts = list(dict.fromkeys(r["prompt"] for r in requests))
        if len(contexts) == 1:
            return {"text": contexts[0], "continuations": [r["continuation"] for r in requests]}
        return {"pairs": [[r["prompt"], r["continuation"]] for r in requests]}
    return {"text": requests[0]["prompt"]}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
