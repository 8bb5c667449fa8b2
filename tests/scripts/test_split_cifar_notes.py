"""scripts/split_cifar.py keeps the hand-written notes of a results page when it rewrites
the table (the notes below ``NOTES_MARKER``)."""
import runpy
from pathlib import Path

from normrl.analysis.results import NOTES_MARKER

ROOT = Path(__file__).resolve().parents[2]


def test_rewriting_the_table_keeps_the_notes(tmp_path):
    write = runpy.run_path(str(ROOT / "scripts" / "split_cifar.py"))["write_keeping_notes"]
    out = tmp_path / "page.md"
    write(out, "table v1\n")
    assert out.read_text() == "table v1\n"
    out.write_text(out.read_text() + NOTES_MARKER + "\nmy notes\n")
    write(out, "table v2\n")
    assert out.read_text() == "table v2\n\n" + NOTES_MARKER + "\nmy notes\n"
