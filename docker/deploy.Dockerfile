# Deployment image for the robot's companion computer (x86_64 with an NVIDIA GPU): ROS 2 Kilted,
# the refine-dp workspace built with colcon, ONNX Runtime GPU and TensorRT for the planner, the
# vendor SDK. Written, not built here (no container engine or registry): see docker/README.md.
#   docker build -f docker/deploy.Dockerfile -t refine-dp:deploy .
FROM ros:kilted-ros-base

# TensorRT for the planner engine (refine_dp_planner's TensorRT engine builds from the exported ONNX);
# TENSORRT=0 leaves ONNX Runtime (CUDA, else CPU) as the engine.
ARG TENSORRT=1
ARG TENSORRT_VERSION=10.13.0.35

# Messages the nodes use beyond ros-base, from the ROS apt repository (tf2_msgs: the real package, so
# ros2_ws/vendor/tf2_msgs, a wheel-only stand-in, is not copied).
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-numpy python3-scipy python3-yaml \
        ros-kilted-sensor-msgs ros-kilted-std-srvs ros-kilted-tf2-msgs ros-kilted-visualization-msgs \
    && rm -rf /var/lib/apt/lists/*

# Python packages the nodes import that Ubuntu/ROS do not package, pinned as in requirements.txt.
# onnxruntime-gpu[cuda,cudnn] brings its CUDA and cuDNN libraries as wheels; the host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit (docker run --gpus all).
# The vendor SDK: Booster's Python binding from PyPI (the DDS types match booster_interface).
RUN pip3 install --break-system-packages --no-cache-dir \
        "onnxruntime-gpu[cuda,cudnn]==1.31.1" mujoco==4.0.0 transforms3d==0.4.2 \
        booster-robotics-sdk-python==1.6.3 \
    && if [ "$TENSORRT" = "1" ]; then \
        pip3 install --break-system-packages --no-cache-dir "tensorrt-cu12==${TENSORRT_VERSION}"; fi

WORKDIR /ws
COPY ros2_ws/src src
RUN . /opt/ros/kilted/setup.sh && colcon build --cmake-args -DBUILD_TESTING=OFF

# DDS on the robot's LAN (docker/README.md): Fast DDS, discovery beyond localhost; ROS_DOMAIN_ID
# must be the robot's (the hardware interface's SDK uses it too).
ENV RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET \
    ROS_DOMAIN_ID=0

# `docker run ... refine-dp:deploy [launch arguments]`: the arguments go to the launch file.
ENTRYPOINT ["/bin/bash", "-c", "source /ws/install/setup.bash && exec ros2 launch refine_dp bringup.launch.py \"$@\"", "--"]
CMD ["target:=robot"]
