"""Points2Objects (Engelmann et al., CVPR 2021): shape exemplars, shape selection, 9-DoF and collision losses.

The detector, backbone and heads are shared with the rest of ``cad_perception_ros.model``; this
package holds only what is specific to Points2Objects and does not depend on the backbone.
"""
from cad_perception_ros.model.points2objects.config import P2OConfig

__all__ = ["P2OConfig"]
