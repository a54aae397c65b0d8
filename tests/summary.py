#!/usr/bin/python3
"""Count test cases over build dirs: cmocka TAP lines from meson's log and
pytest's junit XML. Prints one line 'N passed, N failed, N skipped'."""
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
args = sys.argv[1:]
while args and args[0].startswith("--extra-"):
    n = int(args[1])
    if args[0] == "--extra-passed":
        passed += n
    else:
        failed += n
    args = args[2:]
for d in map(Path, args):
    log = d / "meson-logs" / "testlog.json"
    if log.exists():
        for line in log.read_text().splitlines():
            t = json.loads(line)
            if t.get("name", "").startswith("unit_"):
                out = t.get("stdout", "") or ""
                ok = sum(1 for l in out.splitlines() if l.startswith("ok "))
                bad = sum(1 for l in out.splitlines() if l.startswith("not ok "))
                if ok + bad == 0:  # crashed before any TAP line
                    bad = 1 if t.get("result") != "OK" else 0
                    ok = 1 if t.get("result") == "OK" else 0
                passed += ok
                failed += bad
            elif t.get("name") == "integration" and t.get("result") not in ("OK", "FAIL"):
                failed += 1  # timeout or crash of the runner itself
    xml = d / "tests" / "pytest.xml"
    if xml.exists():
        root = ET.parse(xml).getroot()
        for s in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
            n = int(s.get("tests", 0))
            f = int(s.get("failures", 0)) + int(s.get("errors", 0))
            k = int(s.get("skipped", 0))
            passed += n - f - k
            failed += f
            skipped += k
    else:
        print("summary: no pytest results in %s" % d, file=sys.stderr)
        failed += 1
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
