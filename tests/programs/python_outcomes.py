"""Print the outcome of every test method in a regrtest --junit-xml file.

Usage: python_outcomes.py FILE.xml

One line per method, sorted: its dotted name and one of ok, skipped, FAIL,
ERROR, expected-failure. A method that regrtest re-ran (-w) keeps the outcome
of its last run, as regrtest's own verdict does. Skip reasons are left out:
the outcome is what the comparison is about.
"""
import sys
import xml.etree.ElementTree as ET

# The child element that test.support.testresult writes for each outcome.
OUTCOMES = (("error", "ERROR"), ("failure", "FAIL"), ("skipped", "skipped"),
            ("output", "expected-failure"))


def outcome(case):
    for tag, name in OUTCOMES:
        if case.find(tag) is not None:
            return name
    return "ok"


def main(path):
    last = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        # Unexpected successes and failed subtests leave a testcase element
        # without attributes; regrtest's final result line accounts for them.
        name = case.get("name")
        if name is not None:
            last[name] = outcome(case)
    for name in sorted(last):
        print(name, last[name])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
