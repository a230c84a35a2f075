"""`python -m bcfwatch.cli ...`, as the `bcfwatch` script (the tests and the benchmarks start it this way)."""

from bcfwatch.cli import main

if __name__ == "__main__":
    main()
