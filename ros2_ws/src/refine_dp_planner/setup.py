from setuptools import find_packages, setup

PACKAGE = "refine_dp_planner"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    include_package_data=True,
    # shipped/<engine>/ (metadata.json, sampler.onnx, README, eval): the engines engine_dir may name
    package_data={PACKAGE: ["**/*.yaml", "**/*.xml", "**/*.urdf", "**/*.json", "**/*.onnx",
                            "shipped/*/*.onnx", "shipped/*/*.json", "shipped/*/*.md", "shipped/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={"console_scripts": ["refine_dp_planner = refine_dp_planner.node:main"]},
)
