"""Reports of drill runs: Markdown, HTML and plots.

build_report(run_dir) is the entry point (the only function here with file I/O); plot_run,
explain, render_markdown and render_html are the pure pieces it puts together.
"""

from pgha.report.build import build_report

__all__ = ["build_report"]
