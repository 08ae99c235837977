"""Renderings of footprint's results: text, Markdown, JUnit and HTML for humans and CI."""
