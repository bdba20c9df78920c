"""What a hostile probe of the workflow found, each stopped or handled now: numbers that are not
finite, run names too long or periodic for Snakemake, options that cannot work here, duplicate
YAML keys, a full disk while a notebook runs, the report's temporary figures, its options hash
and title, source paths inside model.pt2 and a truncated one, file names that are not UTF-8 in
predict's outputs, TensorBoard event files of an earlier training, and the lab book's list of
experiments. Each is a fast test; the ones needing a dry run of a copied workflow take seconds."""

import errno
import html
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from builders import (
    REPO,
    TINY_CONFIG,
    copy_workflow,
    image_folder,
    make_notebook,
    schema_errors,
    snakemake,
    tiny_config,
    write_image,
)
from labbook import atomic, book, runner
from labbook.plan.config import load

NAN, INF = yaml.safe_load(".nan"), yaml.safe_load(".inf")  # what YAML's .nan and .inf become


# ---------------------------------------------------------------- 1. numbers that are not finite
@pytest.mark.parametrize(
    "changes, key",
    [
        pytest.param({"train__lr": NAN}, "train.lr", id="train-lr-nan"),
        pytest.param({"train__lr": INF}, "train.lr", id="train-lr-inf"),
        pytest.param({"train__lr": -INF}, "train.lr", id="train-lr-minus-inf"),
        pytest.param({"runs__cifarnet__lr": NAN}, "runs.cifarnet.lr", id="run-lr-nan"),
        pytest.param(
            {"runs__cifarnet__target_accuracy": NAN}, "runs.cifarnet.target_accuracy", id="target-nan"
        ),
        pytest.param(
            {"runs__cifarnet__sweep": {"lr": [0.1, INF]}}, "runs.cifarnet.sweep.lr[1]", id="sweep-inf"
        ),
        pytest.param(
            {"runs__cifarnet__sweep": {"target_accuracy": [NAN]}},
            "runs.cifarnet.sweep.target_accuracy[0]",
            id="sweep-target-nan",
        ),
    ],
)
def test_a_number_that_is_not_finite_is_stopped_naming_the_key(changes, key):
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: -?(nan|inf) is not a finite number"):
        load(tiny_config(**changes))


# ---------------------------------------------------------------- 2. run names
def test_a_300_character_run_name_is_refused_naming_the_run():
    name = "r" * 300
    with pytest.raises(
        ValueError, match=r"^runs\.r{80}: a run name .* at most 64 characters \(this one has 300\)"
    ):
        load(tiny_config(runs={name: {"seeds": [0]}}))
    sweep = {"weight_decay": [0.000123456789], "label_smoothing": [0.0123456789], "warmup_epochs": [0.5]}
    with pytest.raises(ValueError, match=r"at most 128 characters \(this one has 1[3-9][0-9]\)"):
        load(tiny_config(runs={"".join(chr(97 + i % 26) for i in range(60)): {"sweep": sweep}}))


def test_a_run_name_of_25_repeated_letters_is_refused_naming_the_run():
    name = "a" * 25
    with pytest.raises(ValueError, match=rf"^runs\.{name}: ends in one part repeated 20 times"):
        load(tiny_config(runs={name: {"seeds": [0]}}))
    with pytest.raises(ValueError, match=r"^runs\.x(ab){25}: ends in one part repeated"):
        load(tiny_config(runs={"x" + "ab" * 25: {}}))
    load(tiny_config(runs={"a" * 19: {}}))  # 19 times is a name like any other


def test_a_configs_run_names_are_held_to_64_characters_and_a_sweeps_to_128():
    """Like experiment names; a sweep's expanded names (run + options) get room to 128."""

    def name(length):  # the alphabet over and over: no periodic tail
        return "".join(chr(97 + i % 26) for i in range(length))

    load(tiny_config(runs={name(64): {"seeds": [0]}}))
    with pytest.raises(ValueError, match=r"runs\.[a-z]{65}: a run name .* at most 64 characters"):
        load(tiny_config(runs={name(65): {"seeds": [0]}}))
    load(tiny_config(runs={name(60): {"sweep": {"lr": [0.1234567, 0.2]}}}))  # 70 characters expanded
    assert schema_errors(tiny_config(runs={name(129): {"seeds": [0]}}))  # the schema's own bound


def test_a_dry_run_takes_long_sweep_names_and_names_that_start_like_another(tmp_path):
    """A sweep's expanded names of ~100 characters (above the 64 of a config's own names, within
    the 128 of expanded ones), and `a-b`, which starts `a-b-c`: the wildcard constraint keeps
    each job its own."""
    workdir = copy_workflow(tmp_path / "workflow")
    base = "long_" + "abcdefghij" * 5 + "_x"  # 57 characters
    sweep = {"lr": [0.001, 0.002], "batch_size": [16], "weight_decay": [0.0001, 0.0002]}
    config = tiny_config(
        train__epochs=1,
        runs={"a-b": {"seeds": [0]}, "a-b-c": {"seeds": [0, 1]}, base: {"sweep": sweep, "seeds": [0]}},
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    swept = [
        f"{base}-lr{lr}-batch_size16-weight_decay{decay}"
        for lr in (0.001, 0.002)
        for decay in (0.0001, 0.0002)
    ]
    assert all(95 <= len(name) <= 128 for name in swept), [len(name) for name in swept]
    jobs = re.findall(r"rule train:\n(?:    .*\n)*?    wildcards: run=([^,\n]+), seed=(\d+)", result.stdout)
    expected = [("a-b", "0"), ("a-b-c", "0"), ("a-b-c", "1")] + [(name, "0") for name in swept]
    assert sorted(jobs) == sorted(expected), output
    for run, seed in expected:
        assert f"results/tiny/runs/{run}/seed{seed}/analysis/evaluation.json" in result.stdout, run


# ---------------------------------------------------------------- 3. checks before any job
def test_fp16_on_a_cpu_is_stopped_before_any_job_naming_the_key():
    config = tiny_config(runs__cifarnet__precision="fp16")  # the tiny config's device: cpu
    with pytest.raises(ValueError, match=r"^runs\.cifarnet\.precision: fp16 needs a CUDA device"):
        load(config)


def test_a_weights_file_that_does_not_exist_is_stopped_naming_the_key(tmp_path):
    config = tiny_config(runs__cifarnet__weights="weights/missing.pt")
    with pytest.raises(ValueError, match=r"^runs\.cifarnet\.weights: .*missing\.pt is not a file"):
        load(config, config_dir=str(tmp_path))


def test_an_imagefolder_root_that_does_not_exist_is_stopped_naming_the_key(tmp_path):
    root = tmp_path / "no-such-photos"
    config = tiny_config(
        dataset={"name": "photos", "kind": "imagefolder", "root": str(root), "image_size": 32}
    )
    with pytest.raises(ValueError, match=rf"^dataset\.root: {re.escape(str(root))} is not a folder"):
        load(config)


def test_cifar10_without_download_and_without_its_files_is_stopped_naming_the_key(tmp_path):
    config = tiny_config(
        dataset={"name": "cifar10", "kind": "cifar10", "root": str(tmp_path), "download": False}
    )
    with pytest.raises(ValueError, match=r"^dataset\.root: .* does not exist and download is false"):
        load(config)


# ---------------------------------------------------------------- 4. duplicate YAML keys
def test_a_duplicate_key_is_refused_naming_file_line_and_key(tmp_path):
    from labbook import strict_yaml

    config = tmp_path / "dup.yaml"
    config.write_text("experiment: x\ntrain:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(config))}, line 5: key 'lr' is given twice"):
        strict_yaml.refuse_duplicate_keys([config])
    config.write_text("experiment: x\ntitle: a\nexperiment: y\n")
    with pytest.raises(ValueError, match=r"dup\.yaml, line 3: key 'experiment' is given twice"):
        strict_yaml.refuse_duplicate_keys([config])
    config.write_text("experiment: x\nruns:\n  a: {lr: 0.1}\n  b: {lr: 0.1}\n")  # equal keys, two mappings
    strict_yaml.refuse_duplicate_keys([config])


def test_a_dry_run_with_a_duplicate_key_in_the_config_file_fails_saying_so(tmp_path):
    """Twice `experiment:` at the top, or twice `lr:` inside a run: Snakemake alone keeps the last."""
    workdir = copy_workflow(tmp_path / "workflow")
    lines = TINY_CONFIG.read_text().splitlines()
    inside_a_run = lines.index("    target_accuracy: 0.15") + 1  # in runs: cifarnet:
    cases = {
        "experiment": (lines + ["experiment: other"], len(lines) + 1),
        "lr": (
            lines[:inside_a_run] + ["    lr: 0.1", "    lr: 0.2"] + lines[inside_a_run:],
            inside_a_run + 2,
        ),
    }
    for key, (text, line) in cases.items():
        assert yaml.safe_load("\n".join(text))  # a YAML file PyYAML and Snakemake read without a word
        (workdir / "dup.yaml").write_text("\n".join(text) + "\n")
        result = snakemake(workdir, "-n", "--configfile", "dup.yaml", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, (key, output)
        assert re.search(rf"dup\.yaml, line {line}: key '{key}' is given twice", output), (key, output)


# ---------------------------------------------------------------- 5. a full disk while a notebook runs
def test_a_full_disk_while_a_notebook_runs_is_named_and_leaves_a_valid_notebook(tmp_path, monkeypatch):
    """papermill saves the notebook after each cell; the save that fills the disk writes half of
    the JSON, then ENOSPC."""
    import nbformat
    import papermill.engines
    from nbformat.v4 import new_code_cell

    real_write = papermill.engines.write_ipynb
    saves = []

    def write_until_full(nb, path, *args, **kwargs):
        saves.append(path)
        if len(saves) < 3:
            return real_write(nb, path, *args, **kwargs)
        text = nbformat.writes(nb)
        Path(path).write_text(text[: len(text) // 2], encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(papermill.engines, "write_ipynb", write_until_full)
    source = make_notebook(tmp_path / "step.ipynb", new_code_cell("print(size)"), new_code_cell("size * 2"))
    executed = tmp_path / "logs" / "step.ipynb"
    with pytest.raises(atomic.DiskFullError) as caught:
        runner.execute(source, executed, {"size": 4})
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.strerror.startswith(f"no space left on {executed.parent} "), caught.value
    assert len(saves) >= 3, "the disk filled up while the notebook ran"
    text = executed.read_text(encoding="utf-8")
    json.loads(text)
    nbformat.validate(nbformat.reads(text, as_version=4))
    assert [p.name for p in executed.parent.iterdir()] == ["step.ipynb"], "no half-written file is left"


# ---------------------------------------------------------------- 6. the report's temporary figures
def test_the_report_leaves_no_temporary_folder(tmp_path, monkeypatch, demo_data):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # the kernel inherits it
    executed = tmp_path / "report.ipynb"
    runner.execute(REPO / "notebooks" / "report.ipynb", executed, {"data_dir": str(demo_data)})
    assert "data:image/png;base64" in executed.read_text(), "the report drew its figures"
    assert list(temporary.glob("labbook-report-*")) == []


# ---------------------------------------------------------------- 7. the report's options hash and title
def test_the_training_options_hash_is_of_what_the_train_step_was_given():
    from labbook import provenance, report

    options = {"model": "cifarnet", "lr": 0.003, "epochs": 2}
    train = provenance.collect("train", [], config={"run": "a", "seed": 0, "options": options})
    records = [
        {"name": "a", "seed": 0, "metrics": {"device_name": "cpu"}, "provenance": train,
         "analysis_provenance": {"manifest_sha256": "f" * 64}},
    ]  # fmt: skip
    table = report.runs_provenance_table(records)
    expected = provenance.config_hash(options)
    assert f"`{expected[:12]}`" in table, table
    assert f"`{provenance.config_hash(train['config'])[:12]}`" not in table, (
        "the options, not the whole config"
    )


TITLE = 'Cats & "dogs" </title><script>window.pwned=1</script>'


def test_the_pages_title_is_the_experiments_title_escaped(tmp_path):
    from labbook.plan import params

    source = make_notebook(tmp_path / "report.ipynb", parameters='title = "labbook report"')
    values = params.write({"title": TITLE}, folder=tmp_path / "params")
    executed, page = tmp_path / "executed.ipynb", tmp_path / "report.html"
    # the rule's own command: python -m labbook.runner NOTEBOOK EXECUTED --params FILE --html OUT
    assert runner.main([str(source), str(executed), "--params", values, "--html", str(page)]) == 0
    text = page.read_text()
    titles = re.findall(r"<title>(.*?)</title>", text, re.S)
    assert [html.unescape(t.strip()) for t in titles] == [TITLE], titles
    assert "<script>window.pwned" not in text
    runner.to_html(executed, tmp_path / "other.html", title="<b>x</b>")
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in (tmp_path / "other.html").read_text()


# ---------------------------------------------------------------- 8. model.pt2
@pytest.fixture
def portable_model(tmp_path, demo_data):
    """An untrained simplecnn exported as model.pt2 + model.json, as training exports it."""
    from labbook import arrays, export, models
    from labbook.plan.options import TrainOptions

    manifest = arrays.read_manifest(demo_data)
    opts = TrainOptions(model="simplecnn", device="cpu")
    model = models.build("simplecnn", len(manifest["classes"]), "none", "all", {})
    out = tmp_path / "model"
    out.mkdir()
    export.write_portable(model, opts, manifest, 0, export.preprocessing(opts, manifest), out)
    return out


def test_model_pt2_holds_no_absolute_source_path(portable_model):
    home = os.path.expanduser("~")
    wanted = {str(REPO).encode(): "the repository", str(Path(__file__).parent).encode(): "the tests"}
    if home not in ("", "/"):
        wanted[home.encode()] = "the home folder"
    with zipfile.ZipFile(portable_model / "model.pt2") as archive:
        members = archive.namelist()
        assert members
        for member in members:
            content = archive.read(member)
            for path, what in wanted.items():
                assert path not in content, f"{member} holds {what} ({path.decode()})"


def test_a_truncated_model_pt2_is_an_error_naming_the_file(portable_model):
    from labbook import export

    program = portable_model / "model.pt2"
    export.load_portable(portable_model)  # whole, it loads
    program.write_bytes(program.read_bytes()[: program.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(program))} is damaged or truncated"):
        export.load_portable(portable_model)


# ---------------------------------------------------------------- 9. predict: names that are not UTF-8
@pytest.mark.parametrize("home", ["above the images", "elsewhere"])
def test_predict_shows_a_name_that_is_not_utf8_printably(tmp_path, monkeypatch, portable_model, home):
    from labbook import predict

    folder = tmp_path / "me" / "photos"
    odd = write_image(folder / os.fsdecode(b"caf\xe9.png"), size=(40, 40))
    plain = write_image(folder / "plain.png", colour=(20, 200, 20), size=(40, 40))
    monkeypatch.setenv("HOME", str(tmp_path / "me" if home == "above the images" else tmp_path / "other"))
    shown = "~/photos" if home == "above the images" else str(folder)
    result = predict.predict(portable_model, [odd, plain], batch_size=4, device="cpu", top_k=3)
    assert result["files"] == [f"{shown}/caf\\xe9.png", f"{shown}/plain.png"]
    assert result["skipped"] == [] and result["probabilities"].shape == (2, 10)
    csv_path, page_path = tmp_path / "predictions.csv", tmp_path / "predictions.html"
    predict.write_csv(csv_path, result)
    choice = {
        "run": "a",
        "seed": 0,
        "reason": "the only one",
        "mean_val_acc": {"a": 0.6},
        "mean_test_acc": {"a": 0.5},
    }
    predict.write_html(page_path, result, choice)
    assert [row["file"] for row in predict.read_csv(csv_path)] == result["files"]
    page = page_path.read_text(encoding="utf-8")
    assert f'alt="{shown}/caf\\xe9.png"' in page and "<figcaption>caf\\xe9.png</figcaption>" in page
    if home == "above the images":
        assert str(tmp_path) not in csv_path.read_text() + page


# ---------------------------------------------------------------- 10. TensorBoard
def test_two_fresh_trainings_into_one_folder_leave_one_event_file(tmp_path, demo_data):
    from labbook import train
    from labbook.plan.options import TrainOptions

    opts = TrainOptions(model="simplecnn", epochs=1, device="cpu", train_subset=64, batch_size=32)
    out = tmp_path / "run"
    for _ in range(2):
        train.train(opts, demo_data, out, log=lambda _: None)
        assert not (out / "checkpoint.pt").exists()
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1, events


# ---------------------------------------------------------------- 11. the lab book
def test_the_lab_book_lists_every_experiment_beside_it(tmp_path):
    results = tmp_path / "results"
    for name, date in (("this", "2026-01-02T00:00:00+00:00"), ("another", "2026-01-01T00:00:00+00:00")):
        (results / name).mkdir(parents=True)
        (results / name / "book.json").write_text(
            json.dumps({"experiment": name, "title": name, "date": date})
        )
    (results / "data").mkdir()  # the shared data folder holds no book.json
    listed = book.write_index([results / "this" / "book.json"], results / "index.html")
    assert [e["experiment"] for e in listed] == ["this", "another"]
    page = (results / "index.html").read_text()
    assert 'href="another/report.html"' in page and "2 experiments" in page
    listed = book.write_index([str(results / "this" / "book.json")], results / "index.html")
    assert len(listed) == 2, "each experiment once, also when given as text"


def test_an_imagefolder_root_that_exists_is_planned(tmp_path):
    """The root check refuses a missing root only."""
    root = image_folder(tmp_path / "photos", ("ants", "bees", "wasps"), 2, size=(20, 20))
    load(tiny_config(dataset={"name": "photos", "kind": "imagefolder", "root": str(root), "image_size": 16}))
