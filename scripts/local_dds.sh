# Sourced by the test, demo and benchmark entry points (never by the node itself):
# keep all DDS traffic on this machine (shared memory only, localhost discovery)
# and give each run its own ROS_DOMAIN_ID so parallel runs stay apart.
# config/fastdds_local.xml enlarges Fast DDS's shared-memory segment (default 512 KiB, less than
# one 640x480 rgb8 frame) so full-size camera frames (up to 1920x1080 rgb8) arrive; it also uses
# shared memory only. A robot's own set-up: docs/robot.md.
_CAD_PERCEPTION_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_BUILTIN_TRANSPORTS=SHM
export FASTDDS_DEFAULT_PROFILES_FILE="$_CAD_PERCEPTION_ROOT/config/fastdds_local.xml"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
unset ROS_LOCALHOST_ONLY ROS_STATIC_PEERS _CAD_PERCEPTION_ROOT
export ROS_DOMAIN_ID="${CAD_PERCEPTION_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
