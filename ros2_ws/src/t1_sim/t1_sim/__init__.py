"""sim_t1: the simulated T1 on the robot's own DDS topics, with its NatNet MoCap server."""
