"""`python -m footprint` and the console script: Ctrl-C while the command line is still being
imported ends the same way as during a command (exit 130, one line)."""

import sys


def main() -> None:
    try:
        from footprint.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("footprint: interrupted\n")
        sys.exit(130)
    try:
        run()
    finally:
        # The process ends here: what it holds is freed by its end, not by the interpreter's
        # last collections, which would walk every object of click and the core (~4 ms).
        # Not once lief is loaded: nanobind, its binding, reports every object still alive at
        # exit as a leak on stderr (a UKI's inspect printed 32 lines of them).
        if "lief" not in sys.modules:
            import gc

            gc.freeze()


if __name__ == "__main__":
    main()
