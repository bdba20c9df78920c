"""bench/gpu.py, the one command for a GPU session, on the CPU at its smallest sizes: the budget
skips what does not fit and says why, every section is in the JSON with the numbers a reader
needs, each ratio is the quotient of the two numbers it names, and the workflow's rerun ran no
job. (On a GPU it runs the same code at full size; nothing here needs one.)"""

import importlib.util
import json
import subprocess
import sys

import pytest
from builders import REPO

SCRIPT = REPO / "bench" / "gpu.py"
TIMED = ("train_step", "fast_compile", "vgg16", "streamed_vs_resident", "workflow")
EVERY = (*TIMED, "memory")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(tmp_path, *args, timeout):
    """The script as the GPU machine runs it: its own process (it sets torch's global flags)."""
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--small", "--cifar10-jpeg", "none", "--tmp", str(tmp_path),
         "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def test_the_budget_runs_what_fits_in_order_and_names_why_the_rest_was_skipped():
    gpu = load_script()
    now = [0.0]
    clock = lambda: now[0]  # noqa: E731

    def takes(seconds, result=None):
        def section(left_s):
            now[0] += seconds
            if result is None:
                raise RuntimeError("broken section")
            return {**result, "left_s": left_s}

        return section

    written = []
    results = gpu.run_sections(
        [
            ("a", 3, takes(4, {"x": 1})),  # fits (3 ≤ 10); overruns its estimate
            ("b", 5, takes(1, None)),  # fits (5 ≤ 6) and fails: recorded, the next still runs
            ("c", 6, takes(1, {})),  # 5 s left: skipped
            ("d", 2, takes(1, {})),  # a cheaper later one still fits
            ("e", 1, takes(1, {})),  # asked to be skipped
        ],
        budget_s=10,
        skip={"e"},
        clock=clock,
        on_done=lambda r: written.append(dict(r)),
    )
    assert list(results) == ["a", "b", "c", "d", "e"]
    assert results["a"] == {"status": "done", "x": 1, "left_s": 10, "seconds": 4, "estimate_s": 3}
    assert results["b"]["status"] == "error" and "broken section" in results["b"]["error"]
    assert results["c"] == {
        "status": "skipped",
        "reason": "budget: 5 s of 10 s left, this section takes about 6 s",
        "estimate_s": 6,
    }
    assert results["d"]["status"] == "done" and results["d"]["left_s"] == 5
    assert results["e"]["status"] == "skipped" and "--skip" in results["e"]["reason"]
    assert len(written) == 5  # the JSON is rewritten after every section


def test_a_ratio_names_the_two_numbers_it_divides_and_only_those_a_table_has():
    gpu = load_script()
    loops = {"pipeline": {"images_per_s": 300.0}, "bare": {"images_per_s": 400.0}}
    assert gpu.ratio(loops, "pipeline/bare", "images_per_s") == {
        "value": 0.75,
        "numerator": "pipeline",
        "denominator": "bare",
        "quantity": "images_per_s",
        "stands_for": gpu.RATIOS["pipeline/bare"][0],
        "target": 0.95,
    }
    assert list(gpu.ratios(loops, "images_per_s", "pipeline/bare", "pipeline/seed_style")) == [
        "pipeline/bare"
    ]


def test_a_tiny_budget_still_writes_every_section_each_skipped_with_its_reason(tmp_path):
    report, printed = run_script(tmp_path, "--budget-s", "1", timeout=120)
    sections = report["sections"]
    assert tuple(sections) == EVERY
    for name in TIMED:
        assert sections[name]["status"] == "skipped"
        assert sections[name]["reason"].startswith("budget: ") and "takes about" in sections[name]["reason"]
    assert report["skipped"] == {name: sections[name]["reason"] for name in TIMED}
    assert report["meta"]["small"] is True and report["meta"]["budget_s"] == 1
    assert "train_step: skipped: budget" in printed
    assert list(tmp_path.glob("labbook-gpu-bench-*")) == []  # the temporary folder is gone


def check_ratios(section):
    assert section["ratios"], section
    for name, r in section["ratios"].items():
        table = section[{"images_per_s": "loops", "seconds": "runs"}[r["quantity"]]]
        numerator, denominator = table[r["numerator"]][r["quantity"]], table[r["denominator"]][r["quantity"]]
        assert r["value"] == numerator / denominator, name
        assert name == f"{r['numerator']}/{r['denominator']}"
        assert r["stands_for"]


@pytest.mark.slow
def test_the_whole_run_on_the_cpu_measures_every_section(tmp_path):
    report, printed = run_script(tmp_path, timeout=900)
    sections, meta = report["sections"], report["meta"]
    assert tuple(sections) == EVERY
    assert report["skipped"] == {}
    assert meta["small"] and meta["device"].startswith("cpu") and meta["total_s"] <= meta["budget_s"]
    for name in ("train_step", "fast_compile", "vgg16", "streamed_vs_resident"):
        section = sections[name]
        assert section["status"] == "done", section
        assert (
            section["device"] and section["sizes"]["images"] > 0 and section["repeats"]["timed_epochs"] >= 1
        )
        for loop in section["loops"].values():
            assert loop["images_per_s"] > 0 and loop["s_per_epoch"] > 0 and loop["warmup_s"] > 0
            assert loop["images_per_s"] == loop["images"] / loop["s_per_epoch"]
        check_ratios(section)
        assert section["memory"] is None  # no peaks on a CPU: null, not zeros
    assert set(sections["train_step"]["loops"]) == {"pipeline", "bare", "seed_style"}
    fast = sections["fast_compile"]
    assert {"pipeline_fast", "pipeline_fast_compiled", "bare_fast", "train_fast"} <= set(fast["loops"])
    assert fast["compile"]["seconds"]["direct"] > 0
    assert "stand_in" in sections["vgg16"]  # --small says what ran instead of VGG16

    workflow = sections["workflow"]
    assert workflow["status"] == "done", workflow
    first, rerun = workflow["runs"]["first"], workflow["runs"]["noop_rerun"]
    assert first["returncode"] == 0 and {"prepare_data", "train", "analyze", "report"} <= set(first["rules"])
    assert rerun["returncode"] == 0 and rerun["jobs_finished"] == 0 and rerun["nothing_to_be_done"]
    assert 0 < rerun["seconds"] < first["seconds"]
    check_ratios(workflow)
    assert workflow["training"]["epochs"] >= 1 and workflow["steps_s"]

    assert sections["memory"]["value"] is None and "no CUDA" in sections["memory"]["note"]
    assert set(sections["streamed_vs_resident"]["loops"]) == {"resident", "streamed"}
    assert report["summary"] and "pipeline/bare" in printed and "no-op rerun" in printed
