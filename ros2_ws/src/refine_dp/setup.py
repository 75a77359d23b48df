from setuptools import find_packages, setup

PACKAGE = "refine_dp"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    include_package_data=True,
    package_data={PACKAGE: ["**/*.yaml", "**/*.xml", "**/*.urdf", "**/*.json", "**/*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/config", ["config/bringup.yaml"]),
        ("share/" + PACKAGE + "/launch", ["launch/bringup.launch.py"]),
        ("share/" + PACKAGE + "/rviz", ["rviz/refine_dp.rviz"]),
    ],
    zip_safe=False,
    python_requires=">=3.10",
    entry_points={"console_scripts": [
        "refine-dp = refine_dp.cli:main",
        "scripted_commander = refine_dp.scripted_commander:main",
        "recorder = refine_dp.recorder:main",
        "view = refine_dp.view:main",
        "rviz_publisher = refine_dp.rviz_publisher:main",
    ]},
)
