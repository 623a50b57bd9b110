"""The report's claims file and the audit of its internal consistency."""

from __future__ import annotations

import pytest

from bratslib.claims import audit, load_all_claims


def entry(model, *claims):
    return {"model": model, "claims": [{"key": k, "label": k, "value": v, "where": w} for k, v, w in claims]}


CONSISTENT = {
    "a": entry("A", ("mean_iou", 0.60, "T1"), ("dice", 0.70, "T1"), ("dice_background", 0.99, "s1"),
               ("dice_necrotic", 0.60, "s1"), ("dice_oedema", 0.70, "s1"), ("dice_enhancing", 0.65, "s1")),
    "b": entry("B", ("mean_iou", 0.50, "T1"), ("dice", 0.64, "T1"), ("val_dice", 0.645, "s2"), ("train_dice", 0.9, "s2")),
    "structure": {"table_3_1_columns": ["A", "B"], "table_3_1_values_per_row": 2,
                  "models_named": [{"where": "abstract", "stated": 2, "models": ["A", "B"]},
                                   {"where": "results", "models": ["A", "B"]}]},
}


def test_a_consistent_report_has_no_finding():
    assert audit(CONSISTENT) == []


def test_each_rule_fires_once_with_its_locations():
    claims = {
        "a": entry("A", ("mean_iou", 0.50, "T1"), ("dice", 0.50, "T1"), ("val_loss", 0.02, "T1"),
                   ("dice_background", 0.99, "s1"), ("dice_necrotic", 0.70, "s1"), ("dice_oedema", 0.78, "s1"),
                   ("dice_enhancing", 0.77, "s1")),
        "b": entry("B", ("mean_iou", 0.60, "T1"), ("dice", 0.82, "T1"), ("test_dice", 0.99, "s3"), ("val_loss", 0.02, "T1"),
                   ("dice_background", 0.991, "s2"), ("dice_necrotic", 0.701, "s2"), ("dice_oedema", 0.779, "s2"),
                   ("dice_enhancing", 0.771, "s2")),
        "structure": {"table_3_1_columns": ["A", "B", "C"], "table_3_1_values_per_row": 2,
                      "models_named": [{"where": "abstract", "stated": 3, "models": ["A"]},
                                       {"where": "results", "models": ["A", "B"]}]},
    }
    found = audit(claims)
    kinds = sorted(f["kind"] for f in found)
    assert kinds == ["Dice above its IoU bound", "models named", "models named", "same per-class Dice", "same value",
                     "same value", "several Dice", "table shape"], found
    same = [f for f in found if f["kind"] == "same value"]
    assert {f["finding"].split(" ")[0] for f in same} == {"0.02", "0.5"}  # two models' loss; one model's IoU = Dice
    bound = next(f for f in found if f["kind"] == "Dice above its IoU bound")
    assert "B: dice 0.82 exceeds 2m/(1+m) = 0.7500" in bound["finding"] and bound["locations"] == ["T1"]
    assert next(f for f in found if f["kind"] == "same per-class Dice")["locations"] == ["s1", "s2"]


def test_the_report_audit_finds_the_known_inconsistencies():
    found = audit(load_all_claims())
    text = "\n".join(f["finding"] for f in found)
    assert "Standard U-Net (2-D) and 3D U-Net have the same four class Dice values" in text
    assert "0.3211 is given for 3 things" in text
    assert "0.6436 is given for 2 things" in text
    assert "Table 3.1 has 6 column titles" in text
    assert "abstract leaves out 4 of the 7 models" in text
    assert "DeepLabV3+ is given different Dice values" in text
    assert all(f["locations"] for f in found)
    assert len({f["finding"] for f in found}) == len(found)  # each once


@pytest.mark.parametrize("chapter", ["unet2d", "unet3d", "resnet50_unet", "attention_unet", "transunet", "deeplabv3plus",
                                     "quantum", "report"])
def test_every_chapter_entry_is_complete(chapter):
    from bratslib.claims import load_claims

    entry_ = load_claims(chapter)
    assert entry_["model"] and entry_["claims"]
    assert all(0 <= c["value"] <= 1.5 for c in entry_["claims"])
