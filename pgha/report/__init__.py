"""Reports of drill runs: Markdown, HTML and plots."""
