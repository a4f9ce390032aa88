"""Deadlines of the UI scenarios: how long before a scenario is declared stuck.

They are deadlines, never measures: a scenario that works finishes in seconds and these only
matter when something hangs. They are generous because the scenarios of a module run in
parallel, several Kivy apps on the two cores that CI shares with other suites. They nest, so
that the innermost one reports first, with the scenario's own words:

1. a driver stops its app after ``GIVE_UP_SECONDS`` and reports ``"scenario timed out"``;
2. the test kills the scenario's process after ``SCENARIOS_TIMEOUT`` (no result at all);
3. pytest-timeout (120 s in pyproject.toml, and it counts a module fixture's set-up too) only
   after ``PYTEST_TIMEOUT``: ``pytestmark = pytest.mark.timeout(PYTEST_TIMEOUT)``.
"""

# One scenario alone takes 5-40 s of wall time and up to ~20 s of CPU (Mesa draws in software):
# three at once on two cores that other suites also load were seen to need over 150 s.
GIVE_UP_SECONDS = 240
SCENARIOS_TIMEOUT = 300
PYTEST_TIMEOUT = 360

# A countdown that changes each second can be seen to show every second only when the app's
# main loop ran at least this often (the incoming screen ticks every 0.2 s, plus a frame).
SMOOTH_FRAME_GAP_S = 0.5
