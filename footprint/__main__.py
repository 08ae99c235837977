"""`python -m footprint` and the console script: Ctrl-C while the command line is still being
imported ends the same way as during a command (exit 130, one line)."""

import sys


def main() -> None:
    try:
        from footprint.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("footprint: interrupted\n")
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
