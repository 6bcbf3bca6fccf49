"""Drills: workload, nemesis, history, checkers and the schedule that ties them."""
