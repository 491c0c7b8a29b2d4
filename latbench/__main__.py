"""`python -m latbench` runs the CLI."""

from latbench.cli import app

if __name__ == "__main__":
    app()
