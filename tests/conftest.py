import os
import shutil
import tempfile

import pytest

from workflow_helpers import binary_folders_study, folders_study, make_workdir, snakemake


def pytest_configure(config):
    """The code versions plexus.codehash keeps on disk: one folder for this session (its snakemake
    runs share it), never the user's ~/.cache."""
    if "PLEXUS_CACHE_DIR" not in os.environ:
        os.environ["PLEXUS_CACHE_DIR"] = config._plexus_cache = tempfile.mkdtemp(prefix="plexus-cache-")


def pytest_unconfigure(config):
    if getattr(config, "_plexus_cache", None):
        shutil.rmtree(config._plexus_cache, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole default DAG, run once on tests/configs/tiny.yaml; shared by the workflow tests."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny") / "plexus", "tiny.yaml")
    snakemake(workdir, "--cores", "2")
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def folders_run(tmp_path_factory):
    """A finished study of a ``folders`` dataset (workflow_helpers.folders_study), shared by the
    test-set rerun, held-out and predict tests; a test that edits it works on a copy."""
    return folders_study(tmp_path_factory.mktemp("folders") / "plexus")


@pytest.fixture(scope="session")
def multiclass_run(tmp_path_factory):
    """tests/configs/tiny_multiclass.yaml's whole DAG (three classes, 16-bit images of mixed sizes, a
    sheet dataset), shared by the generic-workflow and predict tests."""
    workdir = make_workdir(tmp_path_factory.mktemp("multiclass") / "plexus", "tiny_multiclass.yaml")
    snakemake(workdir, "--cores", "2")
    return workdir



@pytest.fixture(scope="session")
def binary_folders_run(tmp_path_factory):
    """tests/configs/tiny_binary.yaml's whole DAG: a two-class folders dataset (two image sizes),
    task binary by default, with the presence gate, every candidate and the noise study."""
    return binary_folders_study(tmp_path_factory.mktemp("binary") / "plexus")
