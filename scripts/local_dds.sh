# Sourced by the test, demo and benchmark entry points (never by the node itself):
# keep all DDS traffic on this machine (shared memory only, localhost discovery)
# and give each run its own ROS_DOMAIN_ID so parallel runs stay apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_BUILTIN_TRANSPORTS=SHM
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
unset ROS_LOCALHOST_ONLY ROS_STATIC_PEERS
export ROS_DOMAIN_ID="${CAD_PERCEPTION_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
