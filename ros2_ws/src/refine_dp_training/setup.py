from setuptools import find_packages, setup

PACKAGE = "refine_dp_training"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    include_package_data=True,
    package_data={PACKAGE: ["**/*.yaml", "**/*.xml", "**/*.urdf", "**/*.json", "**/*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={"console_scripts": [
        "refine_dp_heuristic = refine_dp_training.tasks.heuristic_node:main",
    ]},
)
