#!/usr/bin/python3
"""Lists the tests a ctest run did not run, from its JUnit report
(`ctest --output-junit FILE`), and applies the skip policy:

- under CI (the environment variable CI is "true", "1" or "yes"), any test
  that did not run (skipped with SKIP_RETURN_CODE 77, disabled, not run)
  fails the run: exit 1, after listing them;
- elsewhere skips are allowed, but listed in a loud summary on stderr;
  exit 0;
- a report with no testcase at all (a -R that matched nothing, a build
  without tests) is not a passing run: under CI it fails (exit 1), elsewhere
  it is reported loudly (exit 0).

Exit 2 when the report is missing or is not a ctest JUnit report.
Usage: scripts/ctest-skips.py [--strict | --lenient] JUNIT.xml
(--strict/--lenient override what CI says; tests/integration/test_ci_skips.sh
checks this script)."""
import os
import sys
import xml.etree.ElementTree as ET


def ci_strict():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def not_run(path):
    """(testcases, [(name, reason, said)] of every testcase whose status is
    not run/fail)."""
    root = ET.parse(path).getroot()
    if root.tag != "testsuite":
        raise ValueError(f"root element is <{root.tag}>, not <testsuite>")
    out = []
    cases = list(root.iter("testcase"))
    for tc in cases:
        status = tc.get("status", "")
        if status in ("run", "fail"):
            continue
        reason = status or "no status"
        sk = tc.find("skipped")
        if sk is not None and sk.get("message"):
            reason = sk.get("message")
        so = tc.find("system-out")
        said = ""
        if so is not None and so.text:
            lines = [ln.strip() for ln in so.text.splitlines() if ln.strip()]
            if lines:
                said = lines[-1][:200]
        out.append((tc.get("name", "?"), reason, said))
    return len(cases), out


def main(argv):
    strict = ci_strict()
    args = []
    for a in argv[1:]:
        if a == "--strict":
            strict = True
        elif a == "--lenient":
            strict = False
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        total, skipped = not_run(args[0])
    except (OSError, ET.ParseError, ValueError) as e:
        print(f"ctest-skips: cannot read the ctest report {args[0]}: {e}",
              file=sys.stderr)
        return 2
    bar = "!" * 72
    if total == 0:
        lines = [bar, "!! the ctest report has NO test at all: nothing ran "
                 "(a -R that matched nothing? a build without FG_TESTS?)"]
        if strict:
            lines.append("!! CI forbids a run without tests.")
        else:
            lines.append("!! Allowed outside CI; under CI=true this fails "
                         "the run.")
        lines.append(bar)
        print("\n".join(lines), file=sys.stderr)
        return 1 if strict else 0
    if not skipped:
        return 0
    lines = [bar, f"!! {len(skipped)} test(s) did NOT run:"]
    for name, reason, said in skipped:
        lines.append(f"!!   {name}: {reason}" + (f" ({said})" if said else ""))
    if strict:
        lines.append("!! CI forbids skipped tests: install what they need "
                     "(scripts/deps.sh).")
    else:
        lines.append("!! Allowed outside CI; under CI=true this fails the run.")
    lines.append(bar)
    print("\n".join(lines), file=sys.stderr)
    return 1 if strict else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
