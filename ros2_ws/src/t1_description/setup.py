from setuptools import find_packages, setup

PACKAGE = "t1_description"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    include_package_data=True,
    package_data={PACKAGE: ["**/*.yaml", "**/*.xml", "**/*.urdf", "**/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    zip_safe=False,
    python_requires=">=3.10",
)
