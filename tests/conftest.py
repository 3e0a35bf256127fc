import shutil

import pytest

from workflow_helpers import make_workdir, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole default DAG, run once on tests/configs/tiny.yaml; shared by the workflow tests."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny") / "plexus", "tiny.yaml")
    snakemake(workdir, "--cores", "2")
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)
