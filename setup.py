"""Ships the top-level configs/ (method defaults, resources, sweeps) inside the package as orchestrator/configs, so a
wheel or a non-editable install finds them (orchestrator/spec/files.py); everything else is in pyproject.toml."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    def run(self):
        super().run()
        self.copy_tree("configs", os.path.join(self.build_lib, "orchestrator", "configs"))


setup(cmdclass={"build_py": BuildPyWithConfigs})
