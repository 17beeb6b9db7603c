import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithPresets(build_py):
    """Install the shipped preset files (synthetic_data/*.npz and manifest.json) inside the package as
    ``mini_cal/_presets``, so that a non-editable install finds them instead of regenerating them; the repository
    keeps one copy, in synthetic_data/. An editable install reads synthetic_data/ directly."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "mini_cal" / "_presets"
        target.mkdir(parents=True, exist_ok=True)
        source = HERE / "synthetic_data"
        for path in [*sorted(source.glob("*.npz")), source / "manifest.json"]:
            shutil.copy2(path, target / path.name)


setup(
    name="mini_cal",
    version="0.2.0",
    description="Teaching implementation of Contribution-Guided Asymmetric Learning (CAL, arXiv 2510.26289) "
    "and its peers in pure NumPy with hand-written backpropagation",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mini_cal", "mini_cal.*"]),
    cmdclass={"build_py": BuildWithPresets},
    install_requires=["numpy>=1.26", "scipy>=1.11", "matplotlib>=3.7", "tqdm>=4.60"],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],  # NVIDIA driver for CUDA 12.x
        "gpu-cuda13": ["cupy-cuda13x"],  # NVIDIA driver for CUDA 13.x (the GPU code is the same)
        "bench": ["torch"],  # benchmarks/bench_torch.py only
        "notebooks": ["jupyter", "nbclient>=0.9", "nbformat>=5.9", "ipykernel>=6"],
        # the teacher's path on nbgrader (tutorials/TEACHING.md, section 4); the tests run it, so `test` has it too
        "teach": ["nbgrader>=0.9.5,<0.10", "nbformat>=5.9", "ipykernel>=6"],
        "test": [
            "pytest>=7",
            "array-api-strict>=2.2",
            "nbclient>=0.9",
            "nbformat>=5.9",
            "ipykernel>=6",
            "nbgrader>=0.9.5,<0.10",
        ],
        "lint": ["ruff==0.17.5"],
        "example": ["scikit-learn>=1.3"],  # builds the real-data example (mini-cal data example digits)
    },
    entry_points={"console_scripts": ["mini-cal=mini_cal.lab.cli:main"]},
)
