from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="mini_cal",
    version="0.1.0",
    description="Teaching implementation of Contribution-Guided Asymmetric Learning (CAL, arXiv 2510.26289) "
    "and its peers in pure NumPy with hand-written backpropagation",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mini_cal", "mini_cal.*"]),
    install_requires=["numpy>=1.26", "scipy>=1.11", "matplotlib>=3.7", "tqdm>=4.60"],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],  # NVIDIA driver for CUDA 12.x
        "gpu-cuda13": ["cupy-cuda13x"],  # NVIDIA driver for CUDA 13.x (the GPU code is the same)
        "bench": ["torch"],  # benchmarks/bench_torch.py only
        "notebooks": ["jupyter", "nbclient>=0.9", "nbformat>=5.9", "ipykernel>=6"],
        "test": ["pytest>=7", "array-api-strict>=2.2", "nbclient>=0.9", "nbformat>=5.9", "ipykernel>=6"],
    },
    entry_points={"console_scripts": ["mini-cal=mini_cal.lab.cli:main"]},
)
