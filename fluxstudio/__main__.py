"""`python -m fluxstudio` is the same as the `fluxstudio` console script."""

from fluxstudio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
