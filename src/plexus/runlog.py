"""Send a stage's output to its Snakemake log file as well as to the terminal."""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path

from plexus.errors import DataError


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def logged(path):
    """Tee stdout and stderr into ``path``; a failure's traceback lands in the log too.

    A :class:`plexus.errors.DataError` (a bad input file, row or layout) is said as its message
    alone, on stderr and in the log, and the job exits with status 1: the message names the file
    and the problem, and a traceback through the readers would only bury it.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
        try:
            yield
        except DataError as error:
            print(f"ERROR (input data): {error}", file=sys.stderr)
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            sys.stdout, sys.stderr = out, err
