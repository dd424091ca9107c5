"""`python -m cad_perception_ros.cli ...`: the same as the `cad-perception` command."""
from cad_perception_ros.cli.main import main

raise SystemExit(main())
