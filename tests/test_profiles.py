"""Chapter profiles and the report's claims file."""

from __future__ import annotations

import pytest

from bratslib.claims import CLAIMS_FILE, load_claims
from bratslib.profiles import PROFILES, optimizer_steps, profile_settings
from bratslib.registry import MODELS


def test_every_chapter_has_the_three_profiles_with_the_same_settings():
    for chapter, profiles in PROFILES.items():
        assert set(profiles) == {"tiny", "smoke", "full"}, chapter
        keys = {name: set(p) for name, p in profiles.items()}
        assert keys["tiny"] == keys["smoke"] == keys["full"], chapter


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_every_segmentation_chapter_trains_with_one_budget(profile):
    """Same split, crop, batch, schedule and number of steps for every 2-D segmentation model of a
    profile; the 3-D model takes about as many steps (one volume each) on the same split."""
    chapters = {spec.profile for spec in MODELS.values() if spec.task == "segmentation"}
    shared = ("split", "crop", "normalize", "size", "batch_size", "epochs", "samples_per_epoch", "foreground_fraction",
              "learning_rate", "lr_schedule", "lr_patience", "stop_patience", "augment")
    two_d = [profile_settings(c, profile) for c in sorted(chapters) if profile_settings(c, profile)["mode"] == "2d"]
    assert len(two_d) == 5
    for key in shared:
        assert len({repr(s[key]) for s in two_d}) == 1, key
    three_d = profile_settings("unet3d", profile)
    assert [three_d[k] for k in ("split", "crop", "normalize")] == [two_d[0][k] for k in ("split", "crop", "normalize")]
    if profile == "smoke":
        assert optimizer_steps(two_d[0]) == 256
        train_volumes = 40 * three_d["split"][0]  # the synthetic default's 40 cases
        assert abs(three_d["epochs"] * train_volumes - optimizer_steps(two_d[0])) <= 0.05 * 256


def test_smoke_split_leaves_twelve_test_cases_of_the_synthetic_default():
    from bratslib.data.source import SYNTHETIC_CASES
    from bratslib.data.splits import split_cases

    split = split_cases([f"c{k:02d}" for k in range(SYNTHETIC_CASES)], profile_settings("unet2d", "smoke")["split"])
    assert [len(split[k]) for k in ("train", "val", "test")] == [20, 8, 12]


def test_full_profile_is_the_report_setting():
    full = profile_settings("unet2d", "full")
    assert full["size"] == 128 and full["samples_per_epoch"] is None and full["augment"]
    assert full["model"] == {"base_filters": 32, "depth": 4, "dropout": 0.2}


def test_overrides_apply_and_none_is_ignored():
    s = profile_settings("unet2d", "smoke", epochs=3, learning_rate=None, model={"dropout": 0.0})
    assert s["epochs"] == 3 and s["learning_rate"] == PROFILES["unet2d"]["smoke"]["learning_rate"]
    assert s["model"]["dropout"] == 0.0 and s["model"]["base_filters"] == PROFILES["unet2d"]["smoke"]["model"]["base_filters"]
    assert PROFILES["unet2d"]["smoke"]["model"]["dropout"] != 0.0  # the table itself is not changed


@pytest.mark.parametrize("args, match", [(("nope", "smoke"), "no profiles"), (("unet2d", "huge"), "unknown profile")])
def test_unknown_chapter_or_profile(args, match):
    with pytest.raises(ValueError, match=match):
        profile_settings(*args)


def test_segmentation_profiles_post_process_nothing_unless_told():
    for chapter, profiles in PROFILES.items():
        for name in profiles:
            settings = profile_settings(chapter, name)
            if settings.get("n_classes") == 2:  # slice classification: no label map to post-process
                assert "postprocess" not in settings, chapter
            else:
                assert settings["postprocess"] == "none", (chapter, name)
    assert profile_settings("unet2d", "smoke", postprocess="largest")["postprocess"] == "largest"
    with pytest.raises(ValueError, match="postprocess='lcc': use one of none, largest"):
        profile_settings("unet2d", "smoke", postprocess="lcc")


def test_mirroring_is_off_in_every_segmentation_profile_and_takes_only_true_or_false():
    for chapter, profiles in PROFILES.items():
        for name in profiles:
            settings = profile_settings(chapter, name)
            if settings.get("n_classes") == 2:  # slice classification: no label map to mirror back
                assert "mirror" not in settings, chapter
            else:
                assert settings["mirror"] is False, (chapter, name)
    assert profile_settings("unet2d", "smoke", mirror=True)["mirror"] is True
    with pytest.raises(ValueError, match="mirror='yes': use True or False"):
        profile_settings("unet2d", "smoke", mirror="yes")


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="unknown setting 'epoch'"):
        profile_settings("unet2d", "smoke", epoch=3)


def test_claims_of_the_unet_chapter():
    entry = load_claims("unet2d")
    values = {c["key"]: c["value"] for c in entry["claims"]}
    assert values["mean_iou"] == 0.63 and values["dice_necrotic"] == 0.70  # Table 3.1, section 3.2.1
    assert all(isinstance(c["label"], str) and c["where"] for c in entry["claims"])


def test_claims_errors(tmp_path):
    with pytest.raises(KeyError, match="no entry 'nope'"):
        load_claims("nope")
    bad = tmp_path / "claims.yml"
    bad.write_text("unet2d:\n  model: x\n  claims:\n    - {key: a, value: 1}\n")
    with pytest.raises(ValueError, match="lacks label, where"):
        load_claims("unet2d", bad)
    with pytest.raises(FileNotFoundError):
        load_claims("unet2d", tmp_path / "missing.yml")
    assert CLAIMS_FILE.is_file()
