"""T1 robot model files (t1.xml, scene_*.xml, t1.urdf) and the description they are generated from.

See README.md in this folder for how to regenerate them after editing `description.py` or the
joint table.
"""
