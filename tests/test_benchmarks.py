"""The benchmarks run and print their tables (tiny sizes; their numbers are not checked here:
speed is measured by running them by hand, never in a timed test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_bench_data_prints_rates_and_ratios_and_writes_its_report(tmp_path):
    done = _bench("bench_data", "--cases", "3", "--epoch-batches", "2", "--epochs", "2", "--data-dir",
                  str(tmp_path / "data"), "--rows", "cached float16 (empty cache at start)", "--out", str(tmp_path / "out"))
    assert "| naive, shuffled slices | 1 (main thread) |" in done.stdout and "| 1.0x |" in done.stdout
    assert "| cached float16 (empty cache at start) |" in done.stdout
    report = json.loads((tmp_path / "out" / "bench_data.json").read_text())
    cached = report["results"]["cached float16 (empty cache at start)"]
    assert len(cached["rates"]) == 2 and cached["first"] < cached["later"]  # epoch 1 preprocesses every case
    assert report["machine"]["cpus"] == os.cpu_count() and "keras" in report["machine"]["versions"]
    md = (tmp_path / "out" / "bench_data.md").read_text()
    assert "Command: `python" in md and "| generator |" in md


@pytest.mark.parametrize("gpus, bf16, expected", [([], False, ["float32"]), ([], True, ["float32", "bf16"]),
                                                 (["T4"], True, ["float32", "mixed", "xla", "mixed+xla"])])
def test_bench_train_measures_what_the_machine_trains_with(monkeypatch, gpus, bf16, expected):
    import benchmarks.bench_train as bench_train
    import bratslib.training

    monkeypatch.setattr(bench_train, "gpu_names", lambda: gpus)
    monkeypatch.setattr(bratslib.training, "cpu_has_native_bf16", lambda: bf16)
    assert bench_train.default_variants() == expected


@pytest.mark.slow
def test_bench_train_measures_a_model_and_its_data_pipeline(tmp_path):
    # float32 only, named: by default a CPU with native bfloat16 measures bf16 too (default_variants)
    done = _bench("bench_train", "--profiles", "tiny", "--models", "unet2d", "quantum_classifier", "--steps", "1",
                  "--warmup", "1", "--data-batches", "2", "--cases", "3", "--data-dir", str(tmp_path / "data"),
                  "--variants", "float32", "--out", str(tmp_path / "out"))
    rows = json.loads((tmp_path / "out" / "bench_train.json").read_text())["results"]
    assert [(r["model"], r["variant"]) for r in rows] == [("unet2d", "float32"), ("quantum_classifier", "float32")]
    assert all(r["train_rate"] > 0 and r["data_rate"] > 0 and r["params"] > 0 for r in rows), rows
    assert "| unet2d | tiny | 7,768 | 128x128x2 x 8 |" in done.stdout  # float32 only: no variant columns


def test_bench_book_reads_papermill_timings(tmp_path):
    import nbformat

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/a\n"
                                       "  - file: notebooks/b\n  - file: notebooks/c\n")
    (tmp_path / "intro.md").write_text("# intro\n")
    executed = tmp_path / "executed" / "notebooks"
    executed.mkdir(parents=True)
    # a and b run side by side (two at a time), c after a
    for name, start, end in (("a", "10:00:00", "10:00:45"), ("b", "10:00:05", "10:01:05"), ("c", "10:00:46", "10:01:16")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("setup = 1"), nbformat.v4.new_code_cell("result = setup.train(b, d)"),
                    nbformat.v4.new_code_cell("# evaluate\nevaluation = evaluate_run(result.run)")]
        for cell, seconds in zip(nb.cells, (2.0, 30.0, 8.0)):
            cell.metadata["papermill"] = {"duration": seconds}
        nb.metadata["papermill"] = {"duration": 45.0, "start_time": f"2026-12-01T{start}.000000+00:00",
                                    "end_time": f"2026-12-01T{end}.000000+00:00"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
        nbformat.write(nb, executed / f"{name}.ipynb")
    done = _bench("bench_book", "--root", str(tmp_path), "--executed", str(tmp_path / "executed"))
    assert "| a | 0 | 45.0 | 33% | 30.0 | 67% | `evaluation = evaluate_run(result.run)` (8.0) |" in done.stdout
    assert "| c | 46 | 45.0 | 33% |" in done.stdout
    assert "| all notebooks (sum) |  | 135.0 | 100% | 90.0 | 67% |  |" in done.stdout
    assert "| execution (first start to last end) | 0 | 76.0 |" in done.stdout
    assert "2 notebooks at a time" in done.stdout


def test_gpu_check_projects_each_chapter_from_its_fastest_variant():
    from benchmarks.gpu_check import book_total, kaggle_fit, project

    def row(model, variant, rate, samples=39_990):
        return {"model": model, "profile": "full", "variant": variant, "train_rate": rate, "epoch_s": samples / rate}

    rows = [row("unet3d", "float32", 0.5, samples=258), row("resnet_classifier", "float32", 100.0),
            row("resnet_classifier", "mixed", 200.0),
            {"model": "resnet_classifier", "profile": "full", "variant": "xla", "error": ["out of memory"]},
            row("quantum_classifier", "float32", 50.0)]
    unet3d, quantum = project(rows, "full")
    # chapter 8 trains both classifiers for 30 epochs; validation: 55 cases x 155 slices at 3 x the rate
    assert [p["variant"] for p in quantum["models"]] == ["mixed", "float32"] and quantum["missing"] == []
    expected = 30 * (39_990 / 200 + 39_990 / 50 + 8_525 / 600 + 8_525 / 150)
    assert quantum["projected_s"] == pytest.approx(expected) and quantum["notebook"] == "08_quantum_vs_classical"
    assert unet3d["projected_s"] == pytest.approx(50 * (258 / 0.5 + 55 / 1.5)) and unet3d["notebook"] == "03_unet3d"
    book = book_total([unet3d, quantum])
    assert book["projected_h"] == pytest.approx((expected + unet3d["projected_s"]) / 3600) and not book["complete"]
    assert [kaggle_fit(s) for s in (60, 12 * 3600, 12 * 3600 + 1, 30 * 3600)] == [
        "yes", "yes", "no: resume across 2 sessions", "no: resume across 3 sessions"]


@pytest.mark.slow
def test_gpu_check_measures_projects_and_says_no_gpu_was_measured(tmp_path):
    from bratslib.profiles import profile_settings

    done = _bench("gpu_check", "--profile", "tiny", "--models", "unet2d", "quantum_classifier", "--warmup", "1",
                  "--steps", "1", "--out", str(tmp_path))
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    results = report["results"]
    assert "no GPU was measured: CPU numbers, for testing the check only" in report["title"]
    assert results["gpu"] is False and results["variants"] == ["float32"]
    rows = results["rows"]
    assert [(r["model"], r["variant"]) for r in rows] == [("unet2d", "float32"), ("quantum_classifier", "float32")]
    assert all(r["train_rate"] > 0 and r["peak_mb"] > 0 for r in rows), rows
    assert all(r["epoch_s"] == pytest.approx(32 / r["train_rate"]) for r in rows)  # tiny: 32 samples per epoch
    chapters = {c["chapter"]: c for c in results["chapters"]}
    assert list(chapters) == ["unet2d", "quantum"] and chapters["quantum"]["missing"] == ["resnet_classifier"]
    for chapter, row in zip(chapters.values(), rows):
        epochs = profile_settings(chapter["chapter"], "tiny")["epochs"]
        val_s = 16 / (3 * row["train_rate"])  # tiny: 16 validation samples, at 3 x the training rate
        assert chapter["epochs"] == epochs and chapter["val_epoch_s"] == pytest.approx(val_s)
        assert chapter["projected_s"] == pytest.approx(epochs * (row["epoch_s"] + val_s))
        assert chapter["kaggle"] == "yes"
    book = results["book"]
    assert book["projected_s"] == pytest.approx(sum(c["projected_s"] for c in chapters.values()))
    assert book["complete"] is False
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| 02_unet2d | unet2d (float32) | 2 |" in md and "**whole book** (measured models only)" in md
    assert "no GPU was measured" in done.stdout


# ----------------------------------------------------------------------------- bench_sim2real


def test_bench_sim2real_reads_variants_as_generator_options_and_training_augmentation():
    from benchmarks.bench_sim2real import parse_variant
    from bratslib.data.synth import DEFAULT_OPTIONS, SYNTH_OPTIONS

    off = dict.fromkeys(SYNTH_OPTIONS, False)
    assert parse_variant("v1") == (off, {})
    assert parse_variant("default") == (None, {})
    assert parse_variant("contrast+glioma") == ({**off, "contrast": True, "glioma": True}, {})
    assert parse_variant("default+augment") == (None, {"augment": "intensity"})
    assert parse_variant("v1+augment=all") == (off, {"augment": "all"})
    assert parse_variant("default+noglioma+noaugment") == ({"glioma": False}, {"augment": False})
    assert parse_variant("faint+norm=median") == ({**off, "faint": True}, {"normalize": "median"})
    assert parse_variant("wmh+norm=rank") == ({**off, "wmh": True}, {"normalize": "rank"})
    default = {k: k in DEFAULT_OPTIONS for k in SYNTH_OPTIONS}
    assert parse_variant("default+faint") == ({**default, "faint": True}, {})  # added to the default's
    assert parse_variant("v1+faint") == ({**off, "faint": True}, {})
    assert parse_variant("default+epochs=48") == (None, {"epochs": 48})
    assert parse_variant("default+sites+cases=80+size=128") == ({**default, "sites": True}, {"cases": 80, "size": 128})
    with pytest.raises(ValueError, match="unknown variant token"):
        parse_variant("colour")
    with pytest.raises(ValueError, match="norm="):
        parse_variant("default+norm=zscore")
    with pytest.raises(ValueError, match="epochs="):
        parse_variant("default+epochs=0")
    with pytest.raises(ValueError, match="cases="):
        parse_variant("default+cases=many")
    assert parse_variant("default+inputs=flair,t1,t1ce,t2") == (None, {"modalities": ("flair", "t1", "t1ce", "t2")})
    assert parse_variant("default+lr=5e-3+epochs=32") == (None, {"learning_rate": 0.005, "epochs": 32})
    for bad in ("lr=0", "lr=fast", "lr=inf", "lr=-1"):
        with pytest.raises(ValueError, match="lr=<rate>"):
            parse_variant(f"default+{bad}")
    assert parse_variant("default+sched=cosine") == (None, {"lr_schedule": "cosine"})
    assert parse_variant("default+batch=8") == (None, {"batch_size": 8})
    assert parse_variant("default+post=largest+mirror") == (None, {"postprocess": "largest", "mirror": True})
    with pytest.raises(ValueError, match="mirror or"):
        parse_variant("default+mirror=yes")
    assert parse_variant("default+patience=24+lrpatience=9") == (None, {"stop_patience": 24, "lr_patience": 9})
    with pytest.raises(ValueError, match="patience=<N>"):
        parse_variant("default+patience=-1")
    with pytest.raises(ValueError, match="batch=<N>"):
        parse_variant("default+batch=0")
    with pytest.raises(ValueError, match=r"sched=<plateau\|cosine>"):
        parse_variant("default+sched=linear")
    with pytest.raises(ValueError, match="at most once"):
        parse_variant("default+inputs=flair,dwi")


def test_bench_sim2real_words_what_a_row_sets():
    from benchmarks.bench_sim2real import describe, own_settings

    row = {"variant": "default+wmh+norm=rank+lr=0.005+cases=80+epochs=48+sched=cosine+batch=8+post=largest"
                      "+lrpatience=9+patience=24+mirror"}
    # epochs: the training column's
    assert own_settings(row) == {"learning_rate": 0.005, "cases": 80, "lr_schedule": "cosine", "batch_size": 8,
                                 "postprocess": "largest", "lr_patience": 9, "stop_patience": 24, "mirror": True}
    assert (describe(["artefacts", "glioma", "wmh"], False, "rank", **own_settings(row))
            == "artefacts, glioma, wmh; intensities normalised by rank; 80 cases; learning rate 0.005; cosine schedule; "
               "batches of 8; rate halved after 9 epochs without progress; stops after 24 epochs without progress; "
               "largest connected tumour kept; mirrored at test time")


def _real_dir():
    from benchmarks.bench_sim2real import default_real_dir

    real = default_real_dir()
    if real is None or not (real / "algorithms").is_dir():
        pytest.skip("no real scans with the algorithms' segmentations (../shared/real or book/data/real)")
    return real


def test_bench_sim2real_scores_the_five_algorithms_against_each_other():
    from benchmarks.bench_sim2real import algorithms_agreement, real_cases

    real = _real_dir()
    result = algorithms_agreement(real, real / "algorithms")
    cases = [c.case_id for c in real_cases(real)]
    assert [row["case_id"] for row in result["per_case"]] == cases
    assert len(result["pairs"]) == 10 * len(cases)  # five algorithms: ten pairs per case
    for row in result["pairs"]:
        assert all(0 <= row[f"dice_{r}"] <= 1 for r in ("WT", "TC", "ET"))
    assert result["mean"]["dice_WT"] > 0.85  # 2020's best algorithms agree closely on the whole tumour


def test_bench_sim2real_probe_brightens_only_the_tumour_of_copies_of_the_real_scans(tmp_path):
    import nibabel as nib

    from benchmarks.bench_sim2real import CONSPICUOUS_GAINS, conspicuous_copies, real_cases

    real = real_cases(_real_dir())
    copies = conspicuous_copies(real, tmp_path)
    assert [c.case_id for c in copies] == [c.case_id for c in real] and all(c.folder.parent == tmp_path for c in copies)
    for files, copy in zip(real, copies):
        seg = np.asarray(nib.load(files.seg).dataobj)
        np.testing.assert_array_equal(np.asarray(nib.load(copy.seg).dataobj), seg)
        for m in ("t1", "t2", "flair", "t1ce"):
            before = np.asarray(nib.load(files.images[m]).dataobj).astype(np.float64)
            after = np.asarray(nib.load(copy.images[m]).dataobj).astype(np.float64)
            region = {"flair": seg > 0, "t1ce": seg == 4}.get(m, np.zeros(seg.shape, bool))
            np.testing.assert_array_equal(after[~region], before[~region])  # outside the region: untouched
            np.testing.assert_allclose(after[region], before[region] * CONSPICUOUS_GAINS.get(m, 1), atol=0.51)
            assert nib.load(copy.images[m]).header.get_data_dtype() == nib.load(files.images[m]).header.get_data_dtype()


@pytest.mark.slow
def test_bench_sim2real_trains_scores_and_writes_its_report(tmp_path):
    real = _real_dir()
    # one variant (a generator option, training augmentation, its own cases, slice size and inputs: every path);
    # the names of variants, v1 included, are
    # test_bench_sim2real_reads_variants_as_generator_options_and_training_augmentation's
    variant = "glioma+augment+cases=4+size=32+inputs=flair,t1ce,t2"
    done = _bench("bench_sim2real", "--variants", variant, "--cases", "3", "--profile", "tiny",
                  "--train-seeds", "0", "1",
                  "--data-dir", str(tmp_path / "data"), "--real-dir", str(real), "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "bench_sim2real.json").read_text())["results"]
    rows = results["variants"]
    assert [r["variant"] for r in rows] == [variant] and rows[0]["options"] == ["glioma"]
    assert rows[0]["augment"] == "intensity" and rows[0]["cases"] == 4 and results["cases"] == 3
    from bratslib.data.synth import GENERATOR_VERSION
    assert rows[0]["generator_version"] == GENERATOR_VERSION  # a row says which generator wrote its data
    for row in rows:
        assert row["seconds_per_case"] > 0 and len(row["real"]["per_case"]) == 2
        assert all(0 <= row[k]["mean"]["dice_WT"] <= 1
                   for k in ("synthetic", "synthetic_threshold", "real", "real_conspicuous"))
        assert [c["case_id"] for c in row["real_conspicuous"]["per_case"]] == [c["case_id"] for c in row["real"]["per_case"]]
    # two training seeds on the same data: the row is their mean, and each seed's real Dice is shown
    runs = rows[0]["runs"]
    assert [run["train_seed"] for run in runs] == [0, 1] and rows[0]["train_seeds"] == [0, 1]
    # (the .json keeps 5 significant digits)
    assert rows[0]["real"]["mean"]["dice_WT"] == pytest.approx(np.mean([run["real"]["mean"]["dice_WT"] for run in runs]),
                                                               abs=1e-4)
    assert "| seed 0: " in done.stdout and "; seed 1: " in done.stdout
    # and the two seeds' models as one (class probabilities averaged), on the same real scans
    ensemble = rows[0]["real_ensemble"]
    assert [c["case_id"] for c in ensemble["per_case"]] == [c["case_id"] for c in rows[0]["real"]["per_case"]]
    assert all(0 <= c[f"dice_{r}"] <= 1 for c in ensemble["per_case"] for r in ("WT", "TC", "ET"))
    from benchmarks.bench_sim2real import _triple
    assert f"; all 2 as one: {_triple(ensemble)} |" in done.stdout
    # ET split by whether the truth has it: scan 901 has enhancing tumour, 902 has none (pooled: once per seed)
    split = runs[0]["real"]["et_split"]
    assert (split["n_present"], split["n_absent"]) == (1, 1)
    assert (rows[0]["real"]["et_split"]["n_present"], rows[0]["real"]["et_split"]["n_absent"]) == (2, 2)
    from benchmarks.bench_sim2real import _et_split
    assert _et_split(rows[0]["synthetic"]) in done.stdout
    # the data of each generator version in a folder of its own (an older one is not reused by mistake)
    assert (tmp_path / "data" / GENERATOR_VERSION / "glioma" / "seed0-cases4" / "bratslib_synthetic.json").is_file()
    assert ("| glioma + augment + cases=4 + size=32 + inputs=flair, t1ce, t2 | glioma; intensity augmentation "
            "while training; 4 cases; 32 x 32 slices; inputs flair, t1ce, t2 |" in done.stdout)
    assert "| the five BraTS 2020 algorithms, pairwise |" in done.stdout
    # each row says how long its U-Net trained (rows appended later may have trained at another budget)
    assert rows[0]["precision"] in ("float32", "mixed_bfloat16", "mixed_float16")  # and under which dtype policy
    from benchmarks.bench_sim2real import SHORT_PRECISION
    assert (f"| 2 seeds: {rows[0]['epochs']} epochs, {rows[0]['train_s']:.0f} s each "
            f"({SHORT_PRECISION[rows[0]['precision']]}) |" in done.stdout)
    assert "(brighter: " in done.stdout  # each real case's probe score beside it
    assert "one threshold on one channel, tuned per case on its truth" in (tmp_path / "out" / "bench_sim2real.md").read_text()


def test_rounded_keeps_five_significant_digits_of_every_float_and_nothing_else():
    from benchmarks.common import rounded

    value = {"dice": 0.745602435, "hd95": [9.433981132056603, float("nan")], "n": 12, "id": "BraTS20_Training_901",
             "rows": ({"s": 1234.56789, "tiny": 1.23456789e-7, "flag": True, "none": None},)}
    out = rounded(value)
    assert out["dice"] == 0.7456 and out["hd95"][0] == 9.434 and np.isnan(out["hd95"][1])
    assert out["rows"] == [{"s": 1234.6, "tiny": 1.2346e-7, "flag": True, "none": None}]
    assert (out["n"], out["id"]) == (12, "BraTS20_Training_901") and json.dumps(rounded(out)) == json.dumps(out)  # idempotent


def test_a_report_drawn_again_from_its_json_keeps_its_command_and_notes(tmp_path):
    from benchmarks.common import rerender, write_report

    def table_of(results):
        return ["variant", "Dice"], [(r["variant"], r["dice"]) for r in results["variants"]]

    results = {"variants": [{"variant": "v1", "dice": 0.5}]}
    md, js = write_report(tmp_path, "bench_x", "A title", "| old table |", results, ["benchmarks/bench_x.py", "--all"],
                          notes="Read the last column with care.")
    report = json.loads(js.read_text())
    report["results"]["variants"].append({"variant": "default", "dice": 0.6})
    js.write_text(json.dumps(report))
    assert rerender(js, table_of) == 0
    text = md.read_text()
    assert "| default | 0.6 |" in text and "| old table |" not in text
    assert "Read the last column with care." in text and "bench_x.py --all" in text
    assert json.loads(js.read_text())["measured"] == report["measured"]


def test_bench_sim2real_counts_the_seeds_at_the_goal_as_printed():
    from benchmarks.bench_sim2real import _per_seed, at_goal

    def real(wt, tc, et):
        return {"mean": {"dice_WT": wt, "dice_TC": tc, "dice_ET": et}}

    assert at_goal(real(0.80, 0.50, 0.50)) and at_goal(real(0.796, 0.4951, 1.0))  # 0.80 / 0.50 / 1.00 as printed
    assert not at_goal(real(0.794, 0.9, 0.9)) and not at_goal(real(0.9, 0.9, 0.49))
    row = {"runs": [{"train_seed": 3, "real": real(0.84, 0.33, 0.81)}, {"train_seed": 4, "real": real(0.82, 0.65, 0.82)}],
           "real_ensemble": real(0.84, 0.56, 0.83)}
    assert _per_seed(row) == ("seed 3: 0.84 / 0.33 / 0.81; seed 4: 0.82 / 0.65 / 0.82; at the goal: 1 of 2; "
                              "all 2 as one: 0.84 / 0.56 / 0.83")
