from setuptools import find_packages, setup

PACKAGE = "t1_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={"console_scripts": ["sim_t1 = t1_sim.sim_t1:main"]},
)
