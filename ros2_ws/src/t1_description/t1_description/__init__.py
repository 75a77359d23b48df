"""The Booster T1 as data: joint table, MJCF/URDF model, kinematics, motor law and shared state/command types."""
