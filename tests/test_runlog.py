"""A stage's log: a bad input is said as its message alone, any other failure with its traceback."""

import pytest

from plexus.data.sheet import SheetError
from plexus.errors import DataError
from plexus.io.images import ImageError
from plexus.runlog import logged


def test_a_data_error_is_its_message_without_a_traceback(tmp_path, capsys):
    log = tmp_path / "logs" / "manifest.log"
    with pytest.raises(SystemExit) as exit_info, logged(log):
        print("reading the sheet")
        raise ImageError("images/a.png: not an image file (cannot identify image file)")
    assert exit_info.value.code == 1
    text = log.read_text()
    assert "reading the sheet" in text
    assert "ERROR (input data): images/a.png: not an image file" in text and "Traceback" not in text
    assert "Traceback" not in capsys.readouterr().err


def test_any_other_failure_keeps_its_traceback(tmp_path):
    log = tmp_path / "train.log"
    with pytest.raises(RuntimeError), logged(log):
        raise RuntimeError("a bug")
    assert "Traceback" in log.read_text() and "RuntimeError: a bug" in log.read_text()


def test_every_reader_error_is_a_data_error():
    from plexus.data.dsb2018 import Dsb2018Error
    from plexus.data.importers import LayoutError
    from plexus.data.ingest import IngestError
    from plexus.io.tiff import TiffLayoutError

    for error in (SheetError, ImageError, Dsb2018Error, LayoutError, IngestError, TiffLayoutError):
        assert issubclass(error, DataError) and issubclass(error, ValueError), error
