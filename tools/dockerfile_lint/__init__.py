"""The Dockerfile linter of this repository: `parser` (Dockerfiles), `dockerignore` (the build
context), `rules` (the house rules, DF001-DF012); `python -m dockerfile_lint` runs them.
"""
