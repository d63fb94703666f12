"""The man pages doc/man/pagekitec.1 and pagekiter.1 stay in sync with the
tools' --help (their one source, with doc/man/TOOL.h2m; doc/man/generate.sh
regenerates them with help2man) and `cmake --install` installs them.

tests/install/stage_deb.sh also regenerates the pages with help2man and
diffs them against the committed ones."""
import re
import subprocess
from pathlib import Path

import pytest

from harness import BUILD_DIR

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "doc" / "man"
TOOLS = ["pagekitec", "pagekiter"]
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9_-]*)")


def help_text(tool):
    r = subprocess.run([str(BUILD_DIR / tool), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


def man_text(tool):
    """The page's words with the roff markup taken out."""
    src = (MAN / (tool + ".1")).read_text()
    lines = [l for l in src.splitlines() if not l.startswith(('.\\"', ".TH"))]
    text = "\n".join(re.sub(r"^\.(SH|SS|TP|PP|IP|B|BR|I|RI|br)\b ?", "", l) for l in lines)
    text = re.sub(r"\\f[BIRP]|\\[/,&]", "", text)
    return text.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\").replace('"', "")


def words(text):
    return text.replace('"', "").split()


@pytest.mark.parametrize("tool", TOOLS)
def test_every_help_option_is_in_the_man_page(tool):
    opts = set()
    for line in help_text(tool).splitlines():
        m = re.match(r"\s+((?:--?[A-Za-z0-9][^ ]*)(?:,? ?(?:/ )?--?[A-Za-z0-9][^ ]*)*)", line)
        if m:
            opts.update(OPTION.findall(m.group(1)))
    assert len(opts) > 15, opts
    page = man_text(tool)
    missing = sorted(o for o in opts if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", page))
    assert not missing, "%s.1 lacks %s: rerun doc/man/generate.sh" % (tool, missing)


@pytest.mark.parametrize("tool", TOOLS)
def test_man_page_says_all_the_help_says(tool):
    """Every word of --help, in order, is in the page (help2man only adds
    markup, headings and the .h2m sections): a changed help text fails here
    until the page is regenerated."""
    hw = [w for l in help_text(tool).splitlines()[1:] if not re.match(r"\s*or: ", l)
          for w in words(l)]
    mw = words(man_text(tool))
    j = 0
    for i, w in enumerate(hw):
        k = j
        while k < len(mw) and mw[k] != w and not (w.endswith(":") and mw[k].lower() == w[:-1].lower()):
            k += 1
        if k == len(mw):
            if re.fullmatch(r"[A-Z][a-z ]*:", w):  # a heading help2man turned into .SH
                continue
            pytest.fail("%s.1 lacks --help's %r (context: %s): rerun doc/man/generate.sh"
                        % (tool, w, " ".join(hw[max(0, i - 5):i + 5])), pytrace=False)
        j = k + 1


def test_cmake_install_puts_the_man_pages_in_man1(tmp_path):
    r = subprocess.run(["cmake", "--install", str(BUILD_DIR), "--prefix", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for tool in TOOLS:
        got = tmp_path / "share" / "man" / "man1" / (tool + ".1")
        assert got.is_file(), sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.1"))
        assert got.read_bytes() == (MAN / (tool + ".1")).read_bytes()
