"""Every CI and p of data/results.md and the README's Findings, recomputed from the committed
data (tinyadv/lab/claims.py): the authors' raw logs and data/runs/*.json."""
import glob
import json
import os
import re

import numpy as np
import pytest

from tinyadv.lab import claims, evidence, stats


@pytest.fixture(scope="module")
def rows():
    return claims.claim_rows()


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def findings():
    text = _read(claims.README)
    start = text.index("## Findings")
    return text[start:text.index("\n## ", start + 1)]


def test_every_generated_block_of_results_md_is_what_the_committed_data_give():
    assert claims.check() == []


def test_every_p_and_interval_printed_in_prose_is_its_cited_claims(rows):
    assert claims.prose_problems(_read(claims.RESULTS_MD), rows) == []
    assert claims.prose_problems(findings(), rows) == []


def test_every_finding_cites_claims_that_exist(rows):
    bullets = [b for b in re.split(r"\n(?=- )", findings()) if b.startswith("- ")]
    assert bullets
    for bullet in bullets:
        cited = claims.CITE.findall(bullet)
        assert cited, f"a finding without a claim: {bullet[:80]}"
        assert set(cited) <= set(rows), set(cited) - set(rows)


def test_a_number_no_claim_gives_is_caught(rows):
    row = next(r for r in rows.values() if not r.get("pending") and r["p"] != "--")
    cid = next(k for k, r in rows.items() if r is row)
    good = f"Something moved ({row['ci']}, {claims._p_text_of(row['p'])}; [{cid}])."
    assert claims.prose_problems(good, rows) == []
    assert claims.prose_problems(good.replace(row["ci"], "[+0.01, +9.99]"), rows)
    assert claims.prose_problems(good.replace(f"[{cid}]", ""), rows)


def test_a_cited_claims_paired_interval_and_p_may_be_printed(rows):
    cid, row = next((k, r) for k, r in rows.items()
                    if not r.get("pending") and r["images"] != "--")
    ci, p = row["images"].rsplit(", ", 1)
    good = f"With the networks held fixed, {ci} ({p}; [{cid}])."
    assert claims.prose_problems(good, rows) == []
    assert claims.prose_problems(good.replace(ci, "[+0.01, +9.99]"), rows)


def test_a_changed_table_is_caught(tmp_path):
    text = _read(claims.RESULTS_MD)
    body = claims.blocks_in(text)["claims"]
    changed = tmp_path / "results.md"
    changed.write_text(text.replace(body, body.replace("|", "| ", 1)), encoding="utf-8")
    assert claims.check(str(changed)) == ["claims"]


def _evidence_files():
    return sorted(glob.glob(os.path.join(evidence.EVIDENCE_DIR, "*.json")))


@pytest.mark.parametrize("path", _evidence_files(), ids=os.path.basename)
def test_each_paired_summary_agrees_with_the_per_seed_counts(path):
    """Two committed records of the same runs: the per-image differences' mean equals the
    difference of the per-seed accuracies' means, for every paired comparison."""
    with open(path, encoding="utf-8") as f:
        ev = json.load(f)
    checked = 0
    for family in ev["families"]:
        for comp in family["comparisons"]:
            if not comp.get("paired"):
                continue
            paired = stats.paired_from_counts(comp["paired"])
            a = evidence.per_seed_percent(ev, comp["a"], comp["column"])
            b = evidence.per_seed_percent(ev, comp["b"], comp["column"])
            assert paired["diff"] == pytest.approx(np.mean(a) - np.mean(b), abs=1e-9)
            assert paired["n"] == ev["totals"][comp["column"]]
            checked += 1
    assert checked or not any(f["comparisons"] for f in ev["families"])
