"""`python -m data_sidecar` and the `data-sidecar` script."""

from data_sidecar.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
